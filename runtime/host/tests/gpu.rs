//! `ferry:host/gpu` end to end: guests compute on the endpoint's GPU (Mesa's
//! lavapipe in CI) and every misuse comes back as a clear error.

#![cfg(feature = "gpu")]

mod common;

use kmeans_lloyd as lloyd;

use std::sync::Arc;

use common::*;
use ferry_host::{
    CallOptions, Function, GpuChoice, Host, HostConfig, Limits, Value, capabilities::gpu::GpuInfo,
};
use serde::Deserialize;

/// A host with the machine's best adapter, or `None` (after a printed reason,
/// or a failure under CI) when it has none.
fn gpu_host() -> Option<Host> {
    let host = Host::new(HostConfig {
        gpu: GpuChoice::Auto,
        name: "gpu-test".into(),
        ..HostConfig::default()
    })
    .expect("host");
    if host.gpu().is_none() {
        let why = "no GPU adapter (install mesa-vulkan-drivers for lavapipe)";
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("required under CI: {why}");
        }
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let info: &GpuInfo = host.gpu().unwrap().info();
    eprintln!("GPU adapter: {info}");
    Some(host)
}

async fn json(
    host: &Host,
    f: &Function,
    export: &str,
    args: Vec<serde_json::Value>,
    limits: &Limits,
) -> Result<serde_json::Value, ferry_host::Error> {
    let export = f.export(export)?;
    let vals: Vec<Value> = export.args_from_json(&args)?;
    let out = host
        .call(f, export, &vals, limits, &CallOptions::default())
        .await?;
    export.result_to_json(out.result.as_ref())
}

fn ok(v: serde_json::Value) -> serde_json::Value {
    match v.get("ok") {
        Some(inner) => inner.clone(),
        None => panic!("expected ok, got {v}"),
    }
}

fn err(v: serde_json::Value) -> String {
    match v.get("err") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => panic!("expected err, got {v}"),
    }
}

#[derive(Debug, Deserialize)]
struct Clustering {
    centers: Vec<f32>,
    codes: Vec<u32>,
    iterations: u32,
    device: String,
}

async fn kmeans(
    host: &Host,
    f: &Function,
    points: &[f32],
    k: u32,
    iterations: u32,
    gpu: bool,
    seed: u64,
) -> Result<Clustering, String> {
    let v = json(
        host,
        f,
        "cluster",
        vec![
            serde_json::json!(points),
            k.into(),
            iterations.into(),
            gpu.into(),
            seed.to_string().into(),
        ],
        &Limits::default(),
    )
    .await
    .expect("kmeans call");
    match v.get("ok") {
        Some(c) => Ok(serde_json::from_value(c.clone()).unwrap()),
        None => Err(err(v)),
    }
}

/// `k` tight blobs on a circle of radius 8: neighbours are ~14 standard
/// deviations apart, so no point sits near a tie.
fn separated(n: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut rng = lloyd::Rng::new(seed);
    let phase = rng.next_f64();
    let mut points = Vec::with_capacity(2 * n);
    for i in 0..n {
        let a = std::f64::consts::TAU * ((i % k) as f64 / k as f64 + phase);
        points.push((8.0 * a.cos() + 0.5 * rng.normal()) as f32);
        points.push((8.0 * a.sin() + 0.5 * rng.normal()) as f32);
    }
    points
}

fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ u64::from(std::process::id())
}

fn assert_agree(what: &str, cpu: &Clustering, gpu: &Clustering) {
    assert_eq!(cpu.iterations, gpu.iterations, "{what}: iterations differ");
    assert_eq!(cpu.codes.len(), gpu.codes.len());
    let differing = cpu
        .codes
        .iter()
        .zip(&gpu.codes)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 0, "{what}: {differing} codes differ");
    for (i, (a, b)) in cpu.centers.iter().zip(&gpu.centers).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4,
            "{what}: center coordinate {i}: cpu {a}, gpu {b}"
        );
    }
}

#[tokio::test]
async fn vector_add_reads_back_exactly() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "gpu-probe");
    let mut rng = lloyd::Rng::new(fresh_seed());
    let n = 10_000;
    let a: Vec<f32> = (0..n).map(|_| (rng.normal() * 1e3) as f32).collect();
    let b: Vec<f32> = (0..n).map(|_| (rng.normal() * 1e-3) as f32).collect();
    let v = json(
        &host,
        &f,
        "vector-add",
        vec![serde_json::json!(a), serde_json::json!(b)],
        &Limits::default(),
    )
    .await
    .unwrap();
    let sum: Vec<f32> = serde_json::from_value(ok(v)).unwrap();
    assert_eq!(sum.len(), n);
    for i in 0..n {
        assert_eq!(sum[i].to_bits(), (a[i] + b[i]).to_bits(), "element {i}");
    }
}

#[tokio::test]
async fn wgsl_errors_name_line_and_column_and_kernels_are_cached() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "gpu-probe");
    let broken = "@group(0) @binding(0) var<storage, read_write> v: array<f32>;\n\n@compute @workgroup_size(1)\nfn main() {\n    v[0] = 1.0 +;\n}\n";
    let compile = |wgsl: &str, entry: &str| {
        let args = vec![wgsl.into(), entry.into()];
        let (host, f) = (&host, &f);
        async move {
            json(host, f, "compile", args, &Limits::default())
                .await
                .unwrap()
        }
    };
    let v = compile(broken, "main").await;
    let e = v.get("err").expect("a syntax error fails").clone();
    assert_eq!(e["line"], 5, "{e}");
    assert_eq!(e["column"], 17, "{e}");
    assert!(e["message"].as_str().unwrap().contains("expected"), "{e}");

    // A type error is caught by validation, still with a place.
    let mistyped = "@compute @workgroup_size(1)\nfn main() {\n    let x: u32 = 1.5;\n}\n";
    let v = compile(mistyped, "main").await;
    let e = v.get("err").expect("a type error fails").clone();
    assert_eq!(e["line"], 3, "{e}");

    let good = "@group(0) @binding(3) var<storage, read_write> v: array<f32>;\n@compute @workgroup_size(1)\nfn main() { v[0] = 1.0; }\n";
    let gpu = host.gpu().unwrap();
    let before = gpu.kernels_compiled();
    for _ in 0..3 {
        let v = compile(good, "main").await;
        assert_eq!(ok(v), serde_json::json!([3]));
    }
    assert_eq!(
        gpu.kernels_compiled(),
        before + 1,
        "compiled once, then cached"
    );

    let v = compile(good, "nope").await;
    let e = v.get("err").unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no compute entry point `nope`"),
        "{e}"
    );
}

#[tokio::test]
async fn caps_ranges_and_bindings_fail_cleanly() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "gpu-probe");
    let capped = Limits {
        gpu_buffer: 1 << 20,
        gpu_memory: 3 << 20,
        ..Limits::default()
    };
    let v = json(
        &host,
        &f,
        "allocate",
        vec![((1u64 << 20) + 4).into()],
        &capped,
    )
    .await
    .unwrap();
    let e = err(v);
    assert!(
        e.contains("over this task's cap of 1048576 bytes per buffer"),
        "{e}"
    );
    let v = json(&host, &f, "allocate", vec![(1u64 << 20).into()], &capped)
        .await
        .unwrap();
    assert_eq!(ok(v), 1 << 20);
    let v = json(
        &host,
        &f,
        "leave-buffers",
        vec![4.into(), (1u64 << 20).into()],
        &capped,
    )
    .await
    .unwrap();
    let e = err(v);
    assert!(e.contains("over its cap of 3145728 bytes"), "{e}");

    let v = json(
        &host,
        &f,
        "read-back",
        vec![16.into(), 8.into(), 12.into()],
        &capped,
    )
    .await
    .unwrap();
    let e = err(v);
    assert!(
        e.contains("out of range") && e.contains("overrun a buffer of 16 bytes"),
        "{e}"
    );
    let v = json(
        &host,
        &f,
        "read-back",
        vec![16.into(), 4.into(), 8.into()],
        &capped,
    )
    .await
    .unwrap();
    assert_eq!(ok(v), serde_json::json!([4, 5, 6, 7, 8, 9, 10, 11]));

    for (how, expect) in [
        (
            "missing-binding",
            "@binding(2) of kernel `add` is not bound",
        ),
        ("unknown-binding", "does not use @binding(7)"),
        ("wrong-usage", "needs a buffer with `storage` usage"),
        (
            "read-without-copy-src",
            "needs a buffer with `copy-src` usage",
        ),
        ("unaligned-write", "must be multiples of 4"),
    ] {
        let v = json(&host, &f, "misuse", vec![how.into()], &capped)
            .await
            .unwrap();
        let e = err(v);
        assert!(e.contains(expect), "{how}: {e}");
    }
}

#[tokio::test]
async fn gpu_memory_returns_to_baseline_after_100_tasks() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "gpu-probe");
    let gpu = host.gpu().unwrap().clone();
    // One task first, so that one-time allocations are in the baseline.
    json(
        &host,
        &f,
        "vector-add",
        vec![serde_json::json!([1.0]), serde_json::json!([2.0])],
        &Limits::default(),
    )
    .await
    .unwrap();
    gpu.wait_idle();
    let baseline = gpu.allocated_bytes();
    for i in 0..100u32 {
        let v = json(
            &host,
            &f,
            "leave-buffers",
            vec![4.into(), (256u64 << 10).into()],
            &Limits::default(),
        )
        .await
        .unwrap();
        assert_eq!(ok(v), 4 * (256 << 10), "task {i}");
        if i % 10 == 0 {
            json(
                &host,
                &f,
                "vector-add",
                vec![serde_json::json!([1.0, 2.0]), serde_json::json!([3.0, 4.0])],
                &Limits::default(),
            )
            .await
            .unwrap();
        }
    }
    gpu.wait_idle();
    assert_eq!(gpu.live_bytes(), 0, "every task buffer was freed");
    if let (Some(before), Some(after)) = (baseline, gpu.allocated_bytes()) {
        assert!(
            after <= before,
            "the device allocator holds {after} bytes after 100 tasks, {before} before"
        );
    } else {
        eprintln!("note: this backend gives no allocator report; checked live task bytes only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_work_counts_against_the_task_timeout() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "gpu-probe");
    // Find a queue of GPU work that runs for about a second on this adapter.
    let mut dispatches: u64 = 4;
    let took = loop {
        let start = std::time::Instant::now();
        let v = json(
            &host,
            &f,
            "spin",
            vec![65_535.into(), dispatches.into()],
            &Limits::default(),
        )
        .await
        .unwrap();
        ok(v);
        let took = start.elapsed();
        if took >= std::time::Duration::from_millis(800) || dispatches >= 1 << 20 {
            break took;
        }
        let factor = (1.0 / took.as_secs_f64().max(1e-3)).clamp(2.0, 64.0);
        dispatches = ((dispatches as f64 * factor) as u64).min(1 << 20);
    };
    eprintln!("{dispatches} dispatches take {took:?}");
    assert!(
        took >= std::time::Duration::from_millis(100),
        "the longest kernel took only {took:?}; cannot test the timeout"
    );
    let tight = Limits {
        timeout: took / 4,
        ..Limits::default()
    };
    let e = json(
        &host,
        &f,
        "spin",
        vec![65_535.into(), dispatches.into()],
        &tight,
    )
    .await
    .expect_err("the GPU wait runs past the limit");
    assert_eq!(e.kind(), "timeout", "{e}");
    // The device is still good for the next task.
    let v = json(
        &host,
        &f,
        "vector-add",
        vec![serde_json::json!([1.0]), serde_json::json!([2.0])],
        &Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(ok(v), serde_json::json!([3.0]));
    host.gpu().unwrap().wait_idle();
    assert_eq!(host.gpu().unwrap().live_bytes(), 0);
}

#[tokio::test]
async fn kmeans_gpu_and_cpu_agree_on_fresh_data() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "kmeans");
    let seed = fresh_seed();
    eprintln!("data seed {seed}");
    for (n, k) in [(20_000, 7), (3_001, 3)] {
        let points = separated(n, k as usize, seed);
        let cpu = kmeans(&host, &f, &points, k, 60, false, seed)
            .await
            .unwrap();
        let gpu = kmeans(&host, &f, &points, k, 60, true, seed).await.unwrap();
        assert_eq!(cpu.device, "cpu");
        assert_eq!(gpu.device, host.gpu().unwrap().info().name);
        assert_agree(&format!("n={n} k={k}"), &cpu, &gpu);
        // The Wasm CPU path is the native code, run in the sandbox.
        let native = lloyd::cluster(&points, k, 60, seed).unwrap();
        assert_eq!(native.codes, cpu.codes);
        assert_eq!(native.centers, cpu.centers);
        assert_eq!(native.iterations, cpu.iterations);
        assert!(cpu.iterations < 60, "well-separated data converges");
    }
    // A run cut short at the iteration cap still agrees.
    let points = lloyd::generate(20_000, 7, 2.5, seed);
    let cpu = kmeans(&host, &f, &points, 7, 3, false, seed).await.unwrap();
    let gpu = kmeans(&host, &f, &points, 7, 3, true, seed).await.unwrap();
    assert_eq!((cpu.iterations, gpu.iterations), (3, 3));
    for (a, b) in cpu.centers.iter().zip(&gpu.centers) {
        assert!((a - b).abs() <= 1e-4, "cpu {a}, gpu {b}");
    }
}

#[tokio::test]
async fn eight_concurrent_kmeans_tasks_share_the_gpu() {
    let Some(host) = gpu_host() else { return };
    let f = load(&host, "kmeans");
    let base = fresh_seed();
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let host = host.clone();
            let f: Arc<Function> = f.clone();
            tokio::spawn(async move {
                let seed = base.wrapping_add(i);
                let points = separated(30_000, 5 + i as usize % 3, seed);
                let k = 5 + i as u32 % 3;
                let gpu = kmeans(&host, &f, &points, k, 60, true, seed).await.unwrap();
                let native = lloyd::cluster(&points, k, 60, seed).unwrap();
                (i, gpu, native)
            })
        })
        .collect();
    for t in tasks {
        let (i, gpu, native) = t.await.unwrap();
        let native = Clustering {
            centers: native.centers,
            codes: native.codes,
            iterations: native.iterations,
            device: "native".into(),
        };
        assert_agree(&format!("task {i}"), &native, &gpu);
    }
    assert_eq!(host.gpu().unwrap().live_bytes(), 0);
}

#[tokio::test]
async fn without_a_gpu_the_gpu_path_fails_clearly_and_the_cpu_path_works() {
    let host = Host::new(HostConfig {
        gpu: GpuChoice::None,
        name: "edge-7".into(),
        ..HostConfig::default()
    })
    .unwrap();
    assert!(host.gpu().is_none());
    let f = load(&host, "kmeans");
    let points = separated(2_000, 3, 1);
    let e = kmeans(&host, &f, &points, 3, 60, true, 1)
        .await
        .unwrap_err();
    assert_eq!(e, "endpoint edge-7 has no GPU adapter");
    let cpu = kmeans(&host, &f, &points, 3, 60, false, 1).await.unwrap();
    assert_eq!(cpu.codes.len(), 2_000);

    let probe = load(&host, "gpu-probe");
    let v = json(&host, &probe, "adapter", vec![], &Limits::default())
        .await
        .unwrap();
    assert_eq!(v, serde_json::Value::Null);
}

#[test]
fn a_named_adapter_that_does_not_exist_is_an_error_at_start() {
    let e = Host::new(HostConfig {
        gpu: GpuChoice::Named("no-such-adapter-xyz".into()),
        ..HostConfig::default()
    })
    .err()
    .expect("no adapter has that name");
    assert!(
        e.to_string()
            .contains("no GPU adapter's name contains `no-such-adapter-xyz`"),
        "{e}"
    );
}
