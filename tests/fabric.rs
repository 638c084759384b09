//! The fabric across real processes on loopback: `ferry serve`, `ferry
//! endpoint start` and `ferry up`, driven through ferry-client and the CLI.

use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::*;
use ferry_client::{ClientError, FailureKind, Requirement, SubmitOptions, WitResult};
use ferry_testkit::guest_bytes;

/// The very estimator the `pi` component is built from, for checking answers.
use pi_estimate as estimate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_mid_run_resumes_every_task_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut service = serve(&data, port);
    let _ep = endpoint(port, "local", &dir.path().join("cache"), 2);
    let client = ready(port, "local", 1).await;
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    let seeds: Vec<u64> = (0..400).collect();
    let futures = client
        .submit_batch::<_, f64>(
            "local",
            &pi.id,
            "pi",
            seeds.iter().map(|&s| (200_000u64, s)),
        )
        .await
        .unwrap();
    let ids: Vec<String> = futures.iter().map(|f| f.task_id().to_owned()).collect();
    // Wait until the run is under way, then pull the plug.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&client, ferry_client::State::Succeeded).await < 20 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.kill9();
    drop(futures);
    let _service = serve(&data, port);
    let client = ready(port, "local", 1).await;
    for (seed, id) in seeds.iter().zip(&ids) {
        let v: f64 = tokio::time::timeout(Duration::from_secs(120), client.result(id))
            .await
            .expect("result in time")
            .unwrap();
        assert_eq!(v, estimate::pi(200_000, *seed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_endpoints_tasks_finish_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let mut a = endpoint(port, "pool", &dir.path().join("a"), 2);
    let client = ready(port, "pool", 1).await;
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    // Only `a` is online: it takes the first tasks in flight.
    let seeds: Vec<u64> = (0..60).collect();
    let futures = client
        .submit_batch::<_, f64>(
            "pool",
            &pi.id,
            "pi",
            seeds.iter().map(|&s| (3_000_000u64, s)),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = client.status().await.unwrap();
        if s.endpoints
            .iter()
            .any(|e| e.name == "pool" && e.in_flight > 0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "nothing in flight on a");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill9();
    let _b = endpoint(port, "pool", &dir.path().join("b"), 2);
    for (seed, f) in seeds.iter().zip(futures) {
        let v = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(v, estimate::pi(3_000_000, *seed));
    }
    assert_eq!(count(&client, ferry_client::State::Succeeded).await, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregistering_uploads_nothing_and_bad_input_gets_clear_statuses() {
    use ferry_proto::v1::{self as pb, functions_client::FunctionsClient};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "local", &dir.path().join("cache"), 1);
    let client = ready(port, "local", 1).await;

    let bytes = guest_bytes("pi");
    let first = client.register(&bytes).await.unwrap();
    assert!(first.uploaded);
    let again = client.register(&bytes).await.unwrap();
    assert!(
        !again.uploaded,
        "the service had the bytes: nothing is sent"
    );
    assert_eq!(again.id, first.id);

    let expect = |r: Result<_, ClientError>, code: tonic::Code, needle: &str| match r {
        Err(ClientError::Service { code: c, message }) => {
            assert_eq!(c, code, "{message}");
            assert!(message.contains(needle), "`{message}` lacks `{needle}`");
        }
        Err(other) => panic!("expected {code:?}, got {other}"),
        Ok(_) => panic!("expected {code:?}, got success"),
    };
    let sub = |ep: &str, f: &str, e: &str, args: &str| {
        let client = client.clone();
        let (ep, f, e, args) = (ep.to_owned(), f.to_owned(), e.to_owned(), args.to_owned());
        async move {
            client
                .submit_json(&ep, &f, &e, &args, &Default::default())
                .await
        }
    };
    expect(
        sub("mars", &first.id, "pi", "[1, 2]").await,
        tonic::Code::NotFound,
        "unknown endpoint `mars`",
    );
    let unknown = blake3::hash(b"nothing").to_hex().to_string();
    expect(
        sub("local", &unknown, "pi", "[1, 2]").await,
        tonic::Code::NotFound,
        "unknown function",
    );
    expect(
        sub("local", &first.id, "tau", "[]").await,
        tonic::Code::NotFound,
        "unknown export `tau`",
    );
    expect(
        sub("local", &first.id, "pi", "[1]").await,
        tonic::Code::InvalidArgument,
        "missing `seed` (u64)",
    );
    expect(
        sub("local", &first.id, "pi", r#"["x", 2]"#).await,
        tonic::Code::InvalidArgument,
        "argument `num-points`",
    );
    expect(
        sub("local", &first.id, "pi", "{").await,
        tonic::Code::InvalidArgument,
        "JSON array",
    );

    let mut raw = FunctionsClient::new(common::channel(port).await);
    let upload = |id: String, data: Vec<u8>| {
        tokio_stream_iter(vec![pb::RegisterChunk {
            id,
            total_size: data.len() as u64,
            data,
        }])
    };
    let e = raw
        .register(upload(unknown.clone(), bytes.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("hash mismatch"), "{}", e.message());
    let junk = b"definitely not wasm".to_vec();
    let junk_id = blake3::hash(&junk).to_hex().to_string();
    let e = raw.register(upload(junk_id, junk)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("WebAssembly magic"), "{}", e.message());
    // Refused uploads leave nothing behind; registered ones are files named
    // by their hash.
    let components = dir.path().join("data/components");
    let mut kept: Vec<String> = std::fs::read_dir(&components)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut expected = vec![format!("{}.wasm", first.id), "incoming".to_owned()];
    expected.sort();
    assert_eq!(kept, expected);
    assert_eq!(
        std::fs::read_dir(components.join("incoming"))
            .unwrap()
            .count(),
        0,
        "a refused upload's spool file is removed"
    );

    // A task that fails at the endpoint fails alone; the service keeps serving.
    let faults = client.register(&guest_bytes("faults")).await.unwrap();
    let boom = client
        .submit::<_, ()>("local", &faults.id, "boom", &("kaput",))
        .await
        .unwrap()
        .await;
    assert!(
        matches!(&boom, Err(ClientError::Task { kind, message, .. }) if kind == "trap" && message.contains("kaput")),
        "{boom:?}"
    );
    let v: f64 = client
        .submit("local", &first.id, "pi", &(10_000u64, 1u64))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, estimate::pi(10_000, 1));
}

fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures_core_stream::Stream<Item = T> {
    futures_core_stream::iter(items)
}

/// The tiny slice of a stream API these tests need, without another dependency.
mod futures_core_stream {
    pub use tonic::codegen::tokio_stream::{Stream, iter};
}

#[test]
fn up_then_call_from_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _up = Proc(
        ferry(&[
            "up",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .spawn()
        .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let pi = ferry_testkit::guest("pi");
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = common::command()
            .args([
                "call",
                "--endpoint",
                "local",
                pi.to_str().unwrap(),
                "pi",
                "1000000",
                "42",
            ])
            .env("FERRY_SERVICE", &url)
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(v, estimate::pi(1_000_000, 42));
    assert!((v - std::f64::consts::PI).abs() <= 0.01);

    let status = common::command()
        .arg("status")
        .env("FERRY_SERVICE", &url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("local") && text.contains("online") && text.contains("succeeded"),
        "{text}"
    );
}

#[derive(Debug, serde::Deserialize)]
struct Clustering {
    centers: Vec<f32>,
    codes: Vec<u32>,
    iterations: u32,
    device: String,
}

/// `kmeans` `clustering-blob`: the codes in a blob.
#[derive(Debug, serde::Deserialize)]
struct ClusteringBlob {
    centers: Vec<f32>,
    codes: ferry_client::BlobRef,
    iterations: u32,
}

/// Every capability's requirement is checked at submit against what the
/// endpoint advertised: a task that needs what its function is not granted
/// is refused there, with the typed requirement and its failure kind, and
/// a granted variable reaches the function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_capability_refuses_an_ungranted_requirement_at_submit_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let other = "0".repeat(64);
    let config = dir.path().join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"lab\"\n\
             [[mounts]]\nhost = \"{0}\"\nguest = \"/private\"\nfunctions = [\"{other}\"]\n\
             [[env]]\nname = \"TOKEN\"\nvalue = \"s3cret\"\nfunctions = [\"{other}\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _ep = endpoint_with(
        port,
        "lab",
        &dir.path().join("cache"),
        1,
        &[
            "--gpu",
            "none",
            "--config",
            config.to_str().unwrap(),
            "--camera",
            "front=test-pattern:64x48",
            "--env",
            "MODE=fast",
        ],
    );
    let client = ready(port, "lab", 1).await;
    let f = client.register(&guest_bytes("files-probe")).await.unwrap();
    let submit = |need: Option<Requirement>, name: &'static str| {
        let (client, id) = (client.clone(), f.id.clone());
        async move {
            let options = match need {
                Some(n) => SubmitOptions::default().require(n),
                None => SubmitOptions::default(),
            };
            client
                .submit_with::<_, Option<String>>("lab", &id, "env-var", &(name,), &options)
                .await
        }
    };
    for (need, kind, message) in [
        (
            Requirement::gpu(),
            FailureKind::NoGpu,
            "endpoint lab has no GPU adapter".to_owned(),
        ),
        (
            Requirement::camera("back"),
            FailureKind::NoCamera,
            "endpoint lab has no camera named back".to_owned(),
        ),
        (
            Requirement::mount("/private"),
            FailureKind::BadMount,
            format!(
                "mount /private on endpoint lab is not granted to function {}",
                f.id
            ),
        ),
        (
            Requirement::env("TOKEN"),
            FailureKind::NoEnv,
            format!(
                "variable TOKEN on endpoint lab is not granted to function {}",
                f.id
            ),
        ),
        (
            Requirement::env("HOME"),
            FailureKind::NoEnv,
            "endpoint lab has no variable HOME".to_owned(),
        ),
    ] {
        match submit(Some(need.clone()), "MODE").await {
            Err(ClientError::Unmet {
                requirement,
                kind: got,
                message: said,
            }) => {
                assert_eq!(requirement, need);
                assert_eq!((got, said), (kind, message));
            }
            Err(e) => panic!("{need}: expected a refusal for the requirement, got {e}"),
            Ok(_) => panic!("{need}: accepted"),
        }
    }
    // Granted: the camera, and the variable, which the function sees.
    let mode = submit(Some(Requirement::env("MODE")), "MODE")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(mode.as_deref(), Some("fast"));
    let camera = submit(Some(Requirement::camera("front")), "TOKEN")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(camera, None, "TOKEN is another function's");
    assert_eq!(
        count(&client, ferry_client::State::WaitingForEndpoint).await,
        0,
        "nothing refused was queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_requirements_are_checked_at_submit_and_kmeans_runs_on_either_path() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _cpu = endpoint(port, "cpu-only", &dir.path().join("a"), 2);
    let _gpu = endpoint_with(
        port,
        "gpu-box",
        &dir.path().join("b"),
        2,
        &["--gpu", "auto"],
    );
    ready(port, "cpu-only", 1).await;
    let client = ready(port, "gpu-box", 1).await;
    let kmeans = client.register(&guest_bytes("kmeans")).await.unwrap();
    let points: Vec<f32> = (0..4_000)
        .map(|i| (i % 2) as f32 * 10.0 + (i as f32 * 0.37).sin())
        .collect();
    let args = (&points, 2u32, 60u32, true, 7u64);

    // Known to lack a GPU: refused at submit, nothing queued.
    let e = client
        .submit_with::<_, WitResult<Clustering, String>>(
            "cpu-only",
            &kmeans.id,
            "cluster",
            &args,
            &ferry_client::SubmitOptions::gpu(),
        )
        .await
        .err()
        .expect("a GPU task for a GPU-less endpoint is refused");
    assert!(
        e.to_string()
            .contains("endpoint cpu-only has no GPU adapter"),
        "{e}"
    );
    // Not declared: the guest finds out and says so; the endpoint lives on.
    let r: WitResult<Clustering, String> = client
        .submit("cpu-only", &kmeans.id, "cluster", &args)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        Result::from(r).unwrap_err(),
        "endpoint cpu-only has no GPU adapter"
    );
    let cpu: WitResult<Clustering, String> = client
        .submit(
            "cpu-only",
            &kmeans.id,
            "cluster",
            &(&points, 2u32, 60u32, false, 7u64),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let cpu = Result::from(cpu).unwrap();
    assert_eq!(cpu.device, "cpu");

    let status = client.status().await.unwrap();
    let gpu_box = status
        .endpoints
        .iter()
        .find(|e| e.name == "gpu-box")
        .unwrap();
    let cpu_only = status
        .endpoints
        .iter()
        .find(|e| e.name == "cpu-only")
        .unwrap();
    assert!(cpu_only.gpu.is_none());
    let Some(adapter) = &gpu_box.gpu else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("required under CI: a GPU adapter (lavapipe) for endpoint gpu-box");
        }
        eprintln!("SKIPPED the GPU half: no GPU adapter on this machine");
        return;
    };
    let gpu: WitResult<Clustering, String> = client
        .submit_with(
            "gpu-box",
            &kmeans.id,
            "cluster",
            &args,
            &ferry_client::SubmitOptions::gpu(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let gpu = Result::from(gpu).unwrap();
    assert_eq!(gpu.device, adapter.name);
    assert_eq!(gpu.codes, cpu.codes);
    assert_eq!(gpu.iterations, cpu.iterations);
    for (a, b) in gpu.centers.iter().zip(&cpu.centers) {
        assert!((a - b).abs() <= 1e-4, "gpu {a}, cpu {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_kmeans_runs_both_paths_and_writes_the_plot() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _gpu = endpoint_with(port, "lab", &dir.path().join("a"), 2, &["--gpu", "auto"]);
    let client = ready(port, "lab", 1).await;
    let has_gpu = client
        .status()
        .await
        .unwrap()
        .endpoints
        .iter()
        .any(|e| e.name == "lab" && e.gpu.is_some());
    let png = dir.path().join("plot.png");
    let url = format!("http://127.0.0.1:{port}");
    let out = common::command()
        .args(["--service", &url, "demo", "kmeans", "--endpoint", "lab"])
        .args(["--points", "30000", "--out"])
        .arg(&png)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| CPU | cpu | "), "{stdout}");
    if has_gpu {
        assert!(stdout.contains("| GPU | "), "{stdout}");
        // Points within rounding of a boundary may go either way.
        let agree: usize = stdout
            .split(" of 30000 codes agree")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no agreement count in {stdout}"));
        assert!(agree >= 29_970, "{agree} of 30000 codes agree");
    } else {
        assert!(
            stdout.contains("has no GPU adapter, so only the CPU path ran"),
            "{stdout}"
        );
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (800, 800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_stream_by_hash_and_a_re_put_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "store", &dir.path().join("a"), 1);
    let client = ready(port, "store", 1).await;

    // 24 MiB that no other test has: more than any one message may carry.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let bytes: Vec<u8> = (0..24 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let file = dir.path().join("input.bin");
    std::fs::write(&file, &bytes).unwrap();
    let hash = blake3::hash(&bytes).to_hex().to_string();

    let first = client.upload_file(&file).await.unwrap();
    assert_eq!(first.blob.hash, hash);
    assert_eq!(
        (first.blob.size, first.sent),
        (bytes.len() as u64, bytes.len() as u64)
    );
    let again = client.upload_file(&file).await.unwrap();
    assert_eq!(again.sent, 0, "a re-put sends nothing");
    assert_eq!(client.upload_bytes(&bytes).await.unwrap().sent, 0);
    assert_eq!(
        client.blob_size(&hash).await.unwrap(),
        Some(bytes.len() as u64)
    );

    let back = dir.path().join("back.bin");
    let got = client.download(&hash, &back).await.unwrap();
    assert_eq!(got.size, bytes.len() as u64);
    assert!(
        std::fs::read(&back).unwrap() == bytes,
        "downloaded bytes differ"
    );

    let unknown = blake3::hash(b"never uploaded").to_hex().to_string();
    assert_eq!(client.blob_size(&unknown).await.unwrap(), None);
    let e = client
        .download(&unknown, dir.path().join("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown blob"), "{e}");
    assert!(!dir.path().join("x").exists());
    let e = client.blob_size("not-a-hash").await.unwrap_err();
    assert!(e.to_string().contains("is not a blob hash"), "{e}");

    // Bytes that do not match their declared hash are refused and not kept.
    let mut raw = ferry_proto::v1::blobs_client::BlobsClient::new(common::channel(port).await);
    let lie = ferry_proto::v1::BlobChunk {
        hash: unknown.clone(),
        size: 5,
        data: b"hello".to_vec(),
        ..Default::default()
    };
    let e = raw.put(tokio_stream::iter(vec![lie])).await.unwrap_err();
    assert!(e.message().contains("hash mismatch"), "{}", e.message());
    assert_eq!(client.blob_size(&unknown).await.unwrap(), None);
    let short = ferry_proto::v1::BlobChunk {
        hash: blake3::hash(b"hello").to_hex().to_string(),
        size: 10,
        data: b"hello".to_vec(),
        ..Default::default()
    };
    let e = raw.put(tokio_stream::iter(vec![short])).await.unwrap_err();
    assert!(
        e.message()
            .contains("ended after 5 of its declared 10 bytes"),
        "{}",
        e.message()
    );

    // The CLI, in another process.
    let url = format!("http://127.0.0.1:{port}");
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "blob by reference").unwrap();
    let out = common::command()
        .args(["--service", &url, "blob", "put"])
        .arg(&small)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        printed,
        blake3::hash(b"blob by reference").to_hex().as_str()
    );
    let fetched = dir.path().join("fetched.txt");
    let out = common::command()
        .args(["--service", &url, "blob", "get", &printed, "-o"])
        .arg(&fetched)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&fetched).unwrap(),
        "blob by reference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmeans_on_a_blob_of_400k_points_matches_the_points_inline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "lab", &dir.path().join("a"), 2);
    let client = ready(port, "lab", 1).await;
    let kmeans = client.register(&guest_bytes("kmeans")).await.unwrap();

    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let points: Vec<f32> = (0..800_000)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (i % 7) as f32 * 3.0 + (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let bytes: Vec<u8> = points.iter().flat_map(|v| v.to_le_bytes()).collect();
    let blob = client.upload_bytes(&bytes).await.unwrap().blob;

    let inline: WitResult<Clustering, String> = client
        .submit(
            "lab",
            &kmeans.id,
            "cluster",
            &(&points, 7u32, 20u32, false, 11u64),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let by_ref: WitResult<ClusteringBlob, String> = client
        .submit(
            "lab",
            &kmeans.id,
            "cluster-blob",
            &(&blob, 7u32, 20u32, false, 11u64),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let (inline, by_ref) = (Result::from(inline).unwrap(), Result::from(by_ref).unwrap());
    assert_eq!(inline.codes.len(), 400_000);
    assert_eq!(by_ref.centers, inline.centers);
    assert_eq!(by_ref.iterations, inline.iterations);
    // The codes come back as a blob the endpoint wrote.
    let codes_file = dir.path().join("codes.u32");
    client
        .download(&by_ref.codes.hash, &codes_file)
        .await
        .unwrap();
    let codes: Vec<u32> = std::fs::read(&codes_file)
        .unwrap()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(codes == inline.codes, "codes by reference differ");

    // A reference to a blob the service does not have fails clearly.
    let missing = ferry_client::BlobRef {
        hash: blake3::hash(b"absent").to_hex().to_string(),
        size: 8,
    };
    let r: WitResult<ClusteringBlob, String> = client
        .submit(
            "lab",
            &kmeans.id,
            "cluster-blob",
            &(&missing, 2u32, 5u32, false, 1u64),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let e = Result::from(r).unwrap_err();
    assert!(e.contains("unknown blob"), "{e}");
}

/// A 48 MiB `list<u8>` result under a 64 MiB output limit comes back whole
/// through the service; an 80 MiB one fails as `output-too-large`, and the
/// endpoint serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_48_mib_byte_result_crosses_the_fabric_and_80_mib_is_output_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "local", &dir.path().join("cache"), 2);
    let client = ready(port, "local", 1).await;
    let types = client.register(&guest_bytes("types")).await.unwrap();
    let options = SubmitOptions {
        limits: Some(ferry_proto::v1::Limits {
            timeout_ms: 120_000,
            memory_bytes: 256 << 20,
            output_bytes: 64 << 20,
        }),
        ..SubmitOptions::default()
    };
    let n = 48u32 << 20;
    let bytes: Vec<u8> = client
        .submit_with("local", &types.id, "fill", &(n, 7u8), &options)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(bytes.len(), n as usize);
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((i as u32).wrapping_mul(31) as u8) ^ 7)
    );
    let err = client
        .submit_with::<_, Vec<u8>>("local", &types.id, "fill", &(80u32 << 20, 7u8), &options)
        .await
        .unwrap()
        .await
        .unwrap_err();
    match err {
        ClientError::Task { kind, message, .. } => {
            assert_eq!(kind, FailureKind::OutputTooLarge);
            assert!(message.contains("83886080 bytes"), "{message}");
        }
        other => panic!("expected output-too-large, got {other}"),
    }
    let small: Vec<u8> = client
        .submit("local", &types.id, "fill", &(3u32, 0u8))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(small, [0, 31, 62], "the endpoint serves on");
}
