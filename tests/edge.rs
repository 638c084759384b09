//! Edge endpoints: small address spaces.

mod common;

use std::process::{Command, Stdio};

use common::*;
use ferry_testkit::guest_bytes;

/// The very estimator the `pi` component is built from, for checking answers.
#[path = "../examples/pi/src/estimate.rs"]
mod estimate;

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
