//! Cameras across real processes: grants in the endpoint config, refusals at
//! submit, and a snapshot written by `ferry call --out`.

mod common;

use common::*;
use ferry_client::{ClientError, FailureKind, Requirement, SubmitOptions, WitResult};
use ferry_testkit::guest_bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_checked_at_submit_and_snapshots_come_back_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let config = dir.path().join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"lab\"\n\
             [[cameras]]\nname = \"front\"\nbackend = \"test-pattern\"\nwidth = 320\nheight = 240\nfunctions = [\"*\"]\n\
             [[cameras]]\nname = \"secret\"\nbackend = \"test-pattern\"\nopen = \"first-use\"\nfunctions = [\"{}\"]\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let _lab = endpoint_with(
        port,
        "lab",
        &dir.path().join("lab"),
        4,
        &["--gpu", "none", "--config", config.to_str().unwrap()],
    );
    let _bare = endpoint(port, "bare", &dir.path().join("bare"), 1);
    let client = ready(port, "lab", 1).await;
    ready(port, "bare", 1).await;
    let status = client.status().await.unwrap();
    let lab = status.endpoints.iter().find(|e| e.name == "lab").unwrap();
    let names: Vec<&str> = lab.cameras.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["front", "secret"]);
    assert_eq!(lab.cameras[0].backend, "test-pattern 320x240@30");

    let f = client
        .register(&guest_bytes("camera-snapshot"))
        .await
        .unwrap();
    let refused = |endpoint: &'static str, need: &'static str| {
        let (client, id) = (client.clone(), f.id.clone());
        async move {
            let need: Requirement = need.parse().unwrap();
            let options = SubmitOptions::default().require(need.clone());
            match client
                .submit_with::<_, WitResult<Vec<u8>, String>>(
                    endpoint,
                    &id,
                    "snapshot",
                    &(None::<String>, 0u32, 0u32),
                    &options,
                )
                .await
            {
                Err(ClientError::Unmet {
                    requirement,
                    kind,
                    message,
                }) => {
                    assert_eq!(requirement, need, "the refusal names the requirement");
                    assert_eq!(kind, FailureKind::NoCamera);
                    message
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("{endpoint} {need}: accepted"),
            }
        }
    };
    assert_eq!(
        refused("bare", "camera").await,
        "endpoint bare has no camera"
    );
    assert_eq!(
        refused("lab", "camera:secret").await,
        format!(
            "camera secret on endpoint lab is not granted to function {}",
            f.id
        )
    );
    assert_eq!(
        refused("lab", "camera:nope").await,
        "endpoint lab has no camera named nope"
    );

    // Without declaring it, the function itself hears why.
    let r: WitResult<Vec<u8>, String> = client
        .submit("lab", &f.id, "snapshot", &(Some("secret"), 0u32, 0u32))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        Result::from(r).unwrap_err(),
        "camera secret on endpoint lab is not granted to this function"
    );

    // Eight at once share the device; the CLI writes one to a file.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, id) = (client.clone(), f.id.clone());
        calls.spawn(async move {
            let r: WitResult<Vec<u8>, String> = client
                .submit_with(
                    "lab",
                    &id,
                    "snapshot",
                    &(Some("front"), 160u32, 120u32),
                    &SubmitOptions {
                        requires: vec![Requirement::camera("front")],
                        ..SubmitOptions::default()
                    },
                )
                .await
                .unwrap()
                .await
                .unwrap();
            Result::from(r).unwrap()
        });
    }
    for png in calls.join_all().await {
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        // Width and height from the IHDR chunk.
        assert_eq!(&png[16..24], &[0, 0, 0, 160, 0, 0, 0, 120]);
    }
    let out = dir.path().join("snap.png");
    let url = format!("http://127.0.0.1:{port}");
    let probe = ferry_testkit::guest("camera-snapshot");
    let done = common::command()
        .args([
            "--service",
            &url,
            "call",
            "--endpoint",
            "lab",
            "--needs-camera",
            "-o",
        ])
        .arg(&out)
        .arg(&probe)
        .args(["snapshot-blob", "null", "0", "0"])
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let png = std::fs::read(&out).unwrap();
    assert_eq!(
        &png[16..24],
        &[0, 0, 1, 64, 0, 0, 0, 240],
        "the camera's own 320x240"
    );
}
