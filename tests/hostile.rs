//! The hostile-guest suite through the fabric: a real `ferry serve` and
//! `ferry endpoint start`, one endpoint running every misbehaving function
//! at once beside good tasks. Each hostile task must end in a typed error
//! (or, for floods, be cut to its caps) within its limit; every good task
//! must return its right result; and the endpoint must serve on.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::Instant;

use common::*;
use ferry_client::{Client, ClientError, FailureKind, SubmitOptions};
use ferry_proto::v1 as pb;
use ferry_testkit::guest_bytes;
use pi_estimate as estimate;
use serde_json::{Value, json};

/// How one hostile task ended.
struct Row {
    guest: &'static str,
    id: Option<String>,
    ended: String,
    message: String,
    /// From submission to its end, as the client saw it.
    ms: u128,
    /// From its dispatch (or start) to its end, as the service recorded it.
    ran_ms: Option<i64>,
}

fn limits(timeout_ms: u64, memory_mib: u64) -> Option<pb::Limits> {
    Some(pb::Limits {
        timeout_ms,
        memory_bytes: memory_mib << 20,
        output_bytes: 1 << 20,
    })
}

/// Submits one task and waits for its end, timing it from the submission.
async fn run(
    client: Client,
    guest: &'static str,
    function: String,
    export: &'static str,
    args: Value,
    options: SubmitOptions,
) -> (Row, Result<Value, ClientError>) {
    let start = Instant::now();
    let mut task = None;
    let result = match client
        .submit_json("lab", &function, export, &args.to_string(), &options)
        .await
    {
        Ok(id) => {
            task = Some(id.clone());
            client.result::<Value>(&id).await
        }
        Err(e) => Err(e),
    };
    let ms = start.elapsed().as_millis();
    let (ended, message) = match &result {
        Err(ClientError::Task { kind, message, .. }) => (kind.to_string(), message.clone()),
        Err(e) => (format!("refused: {e}"), String::new()),
        Ok(v) => match v.get("err") {
            Some(e) => ("err value".to_owned(), e.to_string()),
            None => ("ok".to_owned(), v.to_string()),
        },
    };
    let mut ran_ms = None;
    if let Some(id) = &task
        && let Ok(info) = client.task(id).await
    {
        let at = |s: pb::TaskState| info.history.iter().find(|h| h.state == s as i32);
        let start = at(pb::TaskState::Running).or(at(pb::TaskState::Dispatched));
        if let (Some(start), Some(end)) = (start, info.history.last()) {
            ran_ms = Some(end.at_ms - start.at_ms);
        }
    }
    let row = Row {
        guest,
        id: task,
        ended,
        message,
        ms,
        ran_ms,
    };
    (row, result)
}

fn failed(r: &Result<Value, ClientError>) -> (FailureKind, &str) {
    match r {
        Err(ClientError::Task { kind, message, .. }) => (*kind, message),
        other => panic!("expected a failed task, got {other:?}"),
    }
}

/// The `err` of a WIT result, which the guest got from the host.
fn refused(r: &Result<Value, ClientError>) -> &str {
    match r {
        Ok(v) => v
            .get("err")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("expected an err value, got {v}")),
        Err(e) => panic!("expected an err value, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_are_contained_while_good_tasks_on_the_same_endpoint_run_true() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("input.txt"), "read me").unwrap();
    let config = dir.path().join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"lab\"\n\
             [[mounts]]\nhost = \"{}\"\nguest = \"/data\"\nfunctions = [\"*\"]\n",
            shared.display()
        ),
    )
    .unwrap();
    let _endpoint = endpoint_with(
        port,
        "lab",
        &dir.path().join("cache"),
        4,
        &[
            "--gpu",
            "auto",
            "--config",
            config.to_str().unwrap(),
            "--camera",
            "front=test-pattern:1920x1080",
        ],
    );
    let client = ready(port, "lab", 1).await;
    let status = client.status().await.unwrap();
    let gpu = status
        .endpoints
        .iter()
        .find(|e| e.name == "lab")
        .unwrap()
        .gpu
        .clone();
    if gpu.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("required under CI: a GPU adapter (lavapipe) for the GPU buffer bomb");
        }
        eprintln!("SKIPPED the GPU buffer bomb: no GPU adapter on this machine");
    }
    let faults = client.register(&guest_bytes("faults")).await.unwrap().id;
    let files = client
        .register(&guest_bytes("files-probe"))
        .await
        .unwrap()
        .id;
    let camera = client
        .register(&guest_bytes("camera-snapshot"))
        .await
        .unwrap()
        .id;
    let gpu_probe = client.register(&guest_bytes("gpu-probe")).await.unwrap().id;
    let pi = client.register(&guest_bytes("pi")).await.unwrap().id;

    // A listener the socket guest is pointed at: nothing may reach it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();

    let timed = |ms, mib| SubmitOptions {
        limits: limits(ms, mib),
        ..SubmitOptions::default()
    };
    let mount = |o: SubmitOptions| o.mount("/data");
    let mut hostile: Vec<(&'static str, String, &'static str, Value, SubmitOptions)> = vec![
        (
            "infinite loop",
            faults.clone(),
            "spin",
            json!([]),
            timed(2000, 64),
        ),
        (
            "memory bomb",
            faults.clone(),
            "hog",
            json!([4096]),
            timed(20_000, 64),
        ),
        (
            "deep recursion",
            faults.clone(),
            "recurse",
            json!([100_000_000u32]),
            timed(20_000, 64),
        ),
        (
            "trap",
            faults.clone(),
            "boom",
            json!(["on purpose"]),
            timed(20_000, 64),
        ),
        (
            "huge output",
            faults.clone(),
            "big",
            json!([64u32 << 20]),
            timed(20_000, 256),
        ),
        (
            "stdout flood",
            faults.clone(),
            "chatty",
            json!([200_000u32]),
            timed(20_000, 64),
        ),
        (
            "log flood",
            faults.clone(),
            "logs",
            json!([200_000u32]),
            timed(20_000, 64),
        ),
        (
            "path escape",
            files.clone(),
            "read-file",
            json!(["/data/../../../../etc/passwd"]),
            mount(timed(20_000, 64)),
        ),
        (
            "write to a read-only mount",
            files.clone(),
            "write-file",
            json!(["/data/input.txt", "overwritten"]),
            mount(timed(20_000, 64)),
        ),
        (
            "socket",
            faults.clone(),
            "dial",
            json!([target]),
            timed(20_000, 64),
        ),
    ];
    for _ in 0..4 {
        hostile.push((
            "camera spam at 8192x8192",
            camera.clone(),
            "grab",
            json!([8192, 8192, null]),
            timed(20_000, 64).camera("front"),
        ));
    }
    if gpu.is_some() {
        hostile.push((
            "GPU buffer bomb",
            gpu_probe.clone(),
            "allocate",
            json!([1u64 << 40]),
            SubmitOptions {
                limits: limits(20_000, 64),
                ..SubmitOptions::gpu()
            },
        ));
    }

    // Everything at once, good tasks between the bad.
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for (i, (guest, function, export, args, options)) in hostile.into_iter().enumerate() {
        bad.push(tokio::spawn(run(
            client.clone(),
            guest,
            function,
            export,
            args,
            options,
        )));
        let seed = i as u64;
        good.push(tokio::spawn(run(
            client.clone(),
            "good: pi",
            pi.clone(),
            "pi",
            json!([200_000u64, seed]),
            SubmitOptions::default(),
        )));
    }
    good.push(tokio::spawn(run(
        client.clone(),
        "good: camera at 1920x1080",
        camera.clone(),
        "grab",
        json!([1920, 1080, null]),
        SubmitOptions::default().camera("front"),
    )));
    good.push(tokio::spawn(run(
        client.clone(),
        "good: read the mount",
        files.clone(),
        "read-file",
        json!(["/data/input.txt"]),
        SubmitOptions::default().mount("/data"),
    )));

    let mut rows = Vec::new();
    for task in bad {
        let (row, result) = task.await.unwrap();
        let message = row.message.clone();
        match row.guest {
            "infinite loop" => {
                assert_eq!(failed(&result).0, FailureKind::Timeout, "{message}");
                assert!(row.ms >= 2000, "stopped at its limit, not before");
            }
            "memory bomb" => assert_eq!(failed(&result).0, FailureKind::OutOfMemory, "{message}"),
            "deep recursion" | "trap" => {
                assert_eq!(failed(&result).0, FailureKind::Trap, "{message}")
            }
            "huge output" => {
                assert_eq!(failed(&result).0, FailureKind::OutputTooLarge, "{message}")
            }
            "stdout flood" | "log flood" => {
                let v = result.as_ref().expect("a flood is cut, not fatal");
                assert_eq!(v, &json!(200_000), "{v}");
                let info = client.task(row.id.as_ref().unwrap()).await.unwrap();
                let output = info.output.expect("a finished task keeps its output");
                assert!(output.truncated > 0, "{}: nothing was cut", row.guest);
                assert!(output.stdout.len() <= 1 << 20 && output.logs.len() <= 10_000);
            }
            "path escape" => {
                let e = refused(&result);
                assert!(!e.contains("root:"), "read outside its mount: {e}");
            }
            "write to a read-only mount" => {
                refused(&result);
                assert_eq!(
                    std::fs::read_to_string(shared.join("input.txt")).unwrap(),
                    "read me"
                );
            }
            "socket" => {
                let e = refused(&result);
                assert!(!e.is_empty());
            }
            "camera spam at 8192x8192" => {
                let e = refused(&result);
                assert!(e.contains("more than this task's memory limit"), "{e}");
            }
            "GPU buffer bomb" => {
                let e = refused(&result);
                assert!(e.contains("cap"), "{e}");
            }
            other => unreachable!("{other}"),
        }
        rows.push(row);
    }
    // Nothing dialled out.
    let mut reached = Vec::new();
    while let Ok((mut s, from)) = listener.accept() {
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        reached.push(format!("{from}: {got}"));
    }
    assert!(
        reached.is_empty(),
        "a guest reached the network: {reached:?}"
    );

    let mut good_rows = Vec::new();
    for (i, task) in good.into_iter().enumerate() {
        let (row, result) = task.await.unwrap();
        let v = result.unwrap_or_else(|e| panic!("{}: {e}", row.guest));
        match row.guest {
            "good: pi" => assert_eq!(
                v.as_f64().unwrap(),
                estimate::pi(200_000, i as u64),
                "{}",
                row.guest
            ),
            "good: camera at 1920x1080" => assert!(v.get("ok").is_some(), "{v}"),
            "good: read the mount" => assert_eq!(v, json!({"ok": "read me"})),
            other => unreachable!("{other}"),
        }
        good_rows.push(row);
    }

    // The endpoint lives on, its one session still serving.
    let after = client
        .submit::<_, f64>("lab", &pi, "pi", &(1000u64, 5u64))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(after, estimate::pi(1000, 5));

    println!(
        "{:<28} {:<18} {:>8} {:>8}  MESSAGE",
        "GUEST", "ENDED", "MS", "RAN MS"
    );
    for r in &rows {
        let m: String = r
            .message
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(90)
            .collect();
        let ran = r.ran_ms.map_or("-".to_owned(), |ms| ms.to_string());
        println!("{:<28} {:<18} {:>8} {ran:>8}  {m}", r.guest, r.ended, r.ms);
    }
    let slowest = good_rows.iter().map(|r| r.ms).max().unwrap_or(0);
    println!(
        "{} good tasks beside them, all correct; the slowest took {slowest} ms",
        good_rows.len()
    );
}
