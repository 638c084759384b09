//! Misbehaving guests get typed errors; the host survives and keeps serving.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry_host::{Error, Limits};
use serde_json::json;

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(300),
        memory: 64 << 20,
        ..Limits::default()
    }
}

/// After each failure the same host must still run a good call.
async fn still_serves(host: &ferry_host::Host) {
    let pi = load(host, "pi");
    let (v, _) = call_json(host, &pi, "pi", &["10000", "1"], &Limits::default())
        .await
        .unwrap();
    assert!((v.as_f64().unwrap() - std::f64::consts::PI).abs() < 0.1);
}

#[tokio::test]
async fn an_infinite_loop_times_out_near_the_limit() {
    let host = host();
    let f = load(&host, "faults");
    let start = Instant::now();
    let err = call_json(&host, &f, "spin", &[], &limits())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, Error::Timeout { limit } if limit == Duration::from_millis(300)),
        "{err}"
    );
    assert!(err.to_string().contains("time limit of 300ms"), "{err}");
    assert!(
        took >= Duration::from_millis(300),
        "stopped early: {took:?}"
    );
    // Generous bound: this is a correctness check, not a benchmark.
    assert!(took < Duration::from_secs(5), "stopped late: {took:?}");
    still_serves(&host).await;
}

#[tokio::test]
async fn a_memory_bomb_is_out_of_memory() {
    let host = host();
    let f = load(&host, "faults");
    let err = call_json(&host, &f, "hog", &["1024"], &limits())
        .await
        .unwrap_err();
    match &err {
        Error::OutOfMemory { limit, requested } => {
            assert_eq!(*limit, 64 << 20);
            assert!(*requested > 64 << 20);
        }
        other => panic!("expected out of memory, got {other}"),
    }
    // Within the limit the same function works.
    let (v, out) = call_json(&host, &f, "hog", &["8"], &limits())
        .await
        .unwrap();
    assert_eq!(v, json!((1..=8).sum::<u64>()));
    assert!(out.peak_memory >= 8 << 20);
    still_serves(&host).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_backtrace_and_message() {
    let host = host();
    let f = load(&host, "faults");
    let err = call_json(
        &host,
        &f,
        "boom",
        &[r#""the reactor is on fire""#],
        &limits(),
    )
    .await
    .unwrap_err();
    let Error::Trap {
        message,
        backtrace,
        stderr,
    } = &err
    else {
        panic!("expected a trap, got {err}");
    };
    assert!(message.contains("unreachable"), "{message}");
    let bt = backtrace.as_deref().expect("a wasm backtrace");
    assert!(bt.contains("boom"), "backtrace names the function: {bt}");
    assert!(
        stderr.contains("the reactor is on fire"),
        "panic message in stderr: {stderr}"
    );
    still_serves(&host).await;
}

#[tokio::test]
async fn not_a_component_is_a_clear_error() {
    let host = host();
    for (bytes, needle) in [
        (b"hello, world!".to_vec(), "WebAssembly magic"),
        (Vec::new(), "0 bytes"),
        (
            b"\0asm\x01\0\0\0".to_vec(),
            "core WebAssembly module, not a component",
        ),
        (
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
            "not a valid WebAssembly component",
        ),
    ] {
        let err = host.load(&bytes).unwrap_err();
        assert_eq!(err.kind(), "bad-component");
        assert!(err.to_string().contains(needle), "`{err}` lacks `{needle}`");
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let host = host();
    let f = load(&host, "faults");
    let small = Limits {
        output: 1000,
        ..limits()
    };
    let err = call_json(&host, &f, "big", &["5000"], &small)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutputTooLarge {
                size: 5000,
                limit: 1000
            }
        ),
        "{err}"
    );
    let (v, _) = call_json(&host, &f, "big", &["10"], &small).await.unwrap();
    assert_eq!(v, json!("xxxxxxxxxx"));
}

#[tokio::test]
async fn stdio_is_captured_and_bounded() {
    let host = host();
    let f = load(&host, "faults");
    let (_, out) = call_json(&host, &f, "chatty", &["3"], &limits())
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout.bytes),
        "stdout line 0\nstdout line 1\nstdout line 2\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr.bytes).starts_with("stderr line 0\n"));
    let tight = Limits {
        stdio: 100,
        ..limits()
    };
    let (v, out) = call_json(&host, &f, "chatty", &["1000"], &tight)
        .await
        .unwrap();
    assert_eq!(v, json!(1000), "a full buffer must not fail the guest");
    assert_eq!(out.stdout.bytes.len(), 100);
    assert!(out.stdout.dropped > 10_000);
}

#[tokio::test]
async fn log_lines_and_progress_reach_the_host() {
    let host = host();
    let f = load(&host, "faults");
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let e = f.export("logs").unwrap();
    let opts = ferry_host::CallOptions {
        log: Some(std::sync::Arc::new(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })),
        ..Default::default()
    };
    let out = host
        .call(
            &f,
            e,
            &e.args_from_json_strs(&["3"]).unwrap(),
            &limits(),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(out.logs.len(), 6);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 6);
    assert!(
        matches!(&out.logs[0], ferry_host::LogEvent::Line { message, fields, .. }
        if message == "step" && fields == &[("i".to_owned(), "0".to_owned())])
    );
    assert!(matches!(
        &out.logs[5],
        ferry_host::LogEvent::Progress {
            done: 3,
            total: 3,
            ..
        }
    ));
}

#[tokio::test]
async fn concurrent_failures_do_not_disturb_a_good_call() {
    let host = host();
    let faults = load(&host, "faults");
    let pi = load(&host, "pi");
    let (lim, dflt) = (limits(), Limits::default());
    let bad = async {
        let a = call_json(&host, &faults, "spin", &[], &lim);
        let b = call_json(&host, &faults, "hog", &["1024"], &lim);
        let c = call_json(&host, &faults, "boom", &[r#""x""#], &lim);
        let (a, b, c) = tokio::join!(a, b, c);
        (
            a.unwrap_err().kind().as_str(),
            b.unwrap_err().kind().as_str(),
            c.unwrap_err().kind().as_str(),
        )
    };
    let good = call_json(&host, &pi, "pi", &["200000", "7"], &dflt);
    let (kinds, good) = tokio::join!(bad, good);
    assert_eq!(kinds, ("timeout", "out-of-memory", "trap"));
    assert!((good.unwrap().0.as_f64().unwrap() - std::f64::consts::PI).abs() < 0.05);
}

#[tokio::test]
async fn fuel_stops_a_loop_when_metered_and_is_refused_when_not() {
    let metered = ferry_host::Host::new(ferry_host::HostConfig {
        fuel: true,
        ..ferry_host::HostConfig::default()
    })
    .unwrap();
    let f = load(&metered, "faults");
    let budget = Limits {
        fuel: Some(1_000_000),
        timeout: Duration::from_secs(30),
        ..limits()
    };
    let err = call_json(&metered, &f, "spin", &[], &budget)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OutOfFuel { fuel: 1_000_000 }), "{err}");
    still_serves(&metered).await;

    let unmetered = host();
    let f = load(&unmetered, "faults");
    let err = call_json(&unmetered, &f, "spin", &[], &budget)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "invalid-limits");
    assert!(err.to_string().contains("fuel metering"), "{err}");
}
