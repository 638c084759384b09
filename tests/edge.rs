//! Edge endpoints: the aarch64 build under emulation gives the x86 answers,
//! and small address spaces fall back from the pooling allocator.

mod common;

use std::process::{Command, Stdio};

use common::*;
use ferry_client::WitResult;
use ferry_testkit::guest_bytes;

/// The very estimator the `pi` component is built from, for checking answers.
use pi_estimate as estimate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_in_a_small_address_space_falls_back_and_runs_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let log = dir.path().join("endpoint.log");
    let url = format!("http://127.0.0.1:{port}");
    // 3 GiB of address space: less than one 4 GiB memory reservation.
    let script = format!(
        "ulimit -v 3145728 && exec '{}' endpoint start --service {url} --name small --gpu none --concurrency 2 --cache-dir '{}'",
        env!("CARGO_BIN_EXE_ferry"),
        dir.path().join("cache").display()
    );
    let _ep = Proc(
        Command::new("sh")
            .args(["-c", &script])
            .env("FERRY_CONFIG_DIR", common::config_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = ready(port, "small", 1).await;
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    let futures = client
        .submit_batch::<_, f64>("small", &pi.id, "pi", (0..4u64).map(|s| (200_000u64, s)))
        .await
        .unwrap();
    for (seed, f) in futures.into_iter().enumerate() {
        assert_eq!(f.await.unwrap(), estimate::pi(200_000, seed as u64));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the pooling allocator needs") && text.contains("using on-demand allocation"),
        "{text}"
    );
    assert!(text.contains("ulimit -v: 3072 MiB"), "{text}");
    assert!(text.contains("reserved as they grow"), "{text}");
}

/// kmeans's result, as the CPU path returns it.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Clustering {
    centers: Vec<f32>,
    codes: Vec<u32>,
    iterations: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aarch64_endpoint_under_qemu_gives_the_x86_answers() {
    ferry_testkit::require!(
        ferry_testkit::have("qemu-aarch64-static"),
        "no qemu: apt-get install qemu-user-static"
    );
    let bin = ferry_testkit::aarch64_endpoint();
    ferry_testkit::require!(bin.is_ok(), bin.clone().unwrap_err());
    let bin = bin.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _service = serve(&dir.path().join("data"), port);
    let _x86 = endpoint(port, "x86", &dir.path().join("x86"), 2);
    let arm_log = dir.path().join("arm.log");
    let _arm = Proc(
        Command::new("qemu-aarch64-static")
            .args(["-L", "/usr/aarch64-linux-gnu"])
            .arg(&bin)
            .args([
                "--service",
                &url,
                "--name",
                "arm",
                "--gpu",
                "none",
                "--concurrency",
                "2",
            ])
            .arg("--cache-dir")
            .arg(dir.path().join("arm"))
            .env("FERRY_CONFIG_DIR", common::config_dir())
            .env_remove("FERRY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&arm_log).unwrap())
            .spawn()
            .unwrap(),
    );
    ready(port, "x86", 1).await;
    let client = ready(port, "arm", 1).await;
    let log = std::fs::read_to_string(&arm_log).unwrap();
    assert!(
        log.contains("dialling") && log.contains("arch=\"aarch64\""),
        "{log}"
    );

    // The same components, by hash, to both.
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    let kmeans = client.register(&guest_bytes("kmeans")).await.unwrap();
    for seed in [1u64, 2016] {
        let on = |ep: &'static str| {
            let (client, id) = (client.clone(), pi.id.clone());
            async move {
                client
                    .submit::<_, f64>(ep, &id, "pi", &(300_000u64, seed))
                    .await
                    .unwrap()
                    .await
                    .unwrap()
            }
        };
        let (x86, arm) = (on("x86").await, on("arm").await);
        assert_eq!(x86.to_bits(), arm.to_bits(), "pi, seed {seed}");
        assert_eq!(x86, estimate::pi(300_000, seed));
    }
    // kmeans, CPU path; small, because the aarch64 side is emulated.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let points: Vec<f32> = (0..40_000)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (i % 7) as f32 * 3.0 + (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let cluster = |ep: &'static str| {
        let (client, id, points) = (client.clone(), kmeans.id.clone(), points.clone());
        async move {
            let r: WitResult<Clustering, String> = client
                .submit(ep, &id, "cluster", &(points, 7u32, 30u32, false, 9u64))
                .await
                .unwrap()
                .await
                .unwrap();
            Result::from(r).unwrap()
        }
    };
    let (x86, arm) = (cluster("x86").await, cluster("arm").await);
    assert_eq!(x86.codes.len(), 20_000);
    assert!(x86 == arm, "kmeans differs between x86 and aarch64");
}
