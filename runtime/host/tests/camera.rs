//! `ferry:host/camera` in one host: one broker per device shared by
//! concurrent calls, replay order, grants, and recovery from a failing device.

#![cfg(feature = "camera")]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{host, load};
use ferry_host::camera::{Backend, Replay, TestPattern};
use ferry_host::{CallOptions, Camera, Lent, Limits, OpenAt, Scope};

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a valid PNG");
    let mut buf = vec![0u8; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// `cameras` lent to every function, and cameras named `withheld` that the
/// endpoint has but lends to none.
fn with_cameras(cameras: &[&Arc<Camera>], withheld: &[&str]) -> CallOptions {
    let mut camera: Vec<Lent<Arc<Camera>>> = cameras
        .iter()
        .map(|c| Lent::to_all(Arc::clone(c)))
        .collect();
    for name in withheld {
        let other = Camera::start(
            name,
            Box::new(TestPattern::new(64, 48, 30.0)),
            30.0,
            OpenAt::FirstUse,
        );
        camera.push(Lent::to(other, Scope::functions(Vec::<String>::new())));
    }
    CallOptions {
        camera,
        ..CallOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_snapshots_share_one_open_device() {
    let host = host();
    let f = load(&host, "camera-snapshot");
    let pattern = TestPattern::new(1280, 720, 30.0);
    let camera = Camera::start("front", Box::new(pattern), 30.0, OpenAt::Start);
    let options = with_cameras(&[&camera], &[]);
    let export = f.export("snapshot").unwrap();
    let args = export.args_from_json_strs(&["null", "320", "240"]).unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (host, f, options, args) = (host.clone(), f.clone(), options.clone(), args.clone());
        calls.spawn(async move {
            let export = f.export("snapshot").unwrap();
            let out = host
                .call(&f, export, &args, &Limits::default(), &options)
                .await
                .unwrap();
            export.result_to_json(out.result.as_ref()).unwrap()
        });
    }
    for v in calls.join_all().await {
        let bytes: Vec<u8> = serde_json::from_value(v["ok"].clone())
            .unwrap_or_else(|_| panic!("a snapshot failed: {v}"));
        let (w, h, _) = decode_png(&bytes);
        assert_eq!((w, h), (320, 240));
    }
    assert_eq!(camera.opens(), 1, "the device was opened once");
    assert_eq!(camera.served(), 32);
    assert!(
        camera.grabs() < 32,
        "calls in one frame period share frames ({} grabs)",
        camera.grabs()
    );
}

#[tokio::test]
async fn replay_returns_the_directory_in_order_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    for i in 0..4 {
        let (w, h) = (40 + i * 2, 30);
        let rgb: Vec<u8> = (0..w * h * 3)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let file = std::fs::File::create(dir.path().join(format!("frame-{i:03}.png"))).unwrap();
        let mut e = png::Encoder::new(file, w, h);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        e.write_header().unwrap().write_image_data(&rgb).unwrap();
        images.push((w, h, rgb));
    }
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let camera = Camera::start(
        "replay",
        Box::new(Replay::new(dir.path(), 200.0)),
        200.0,
        OpenAt::FirstUse,
    );
    let mut last = None;
    for round in 0..2 {
        for (i, (w, h, rgb)) in images.iter().enumerate() {
            let frame = camera.capture(last).await.unwrap();
            last = Some(frame.sequence);
            assert_eq!(
                (frame.width, frame.height),
                (*w, *h),
                "round {round} image {i}"
            );
            assert!(frame.data == *rgb, "round {round} image {i} differs");
        }
    }
    assert_eq!(camera.opens(), 1);

    let empty = tempfile::tempdir().unwrap();
    let camera = Camera::start(
        "none",
        Box::new(Replay::new(empty.path(), 10.0)),
        10.0,
        OpenAt::FirstUse,
    );
    let e = camera.capture(None).await.unwrap_err();
    assert!(e.contains("holds no .png or .jpg images"), "{e}");
}

#[tokio::test]
async fn without_a_grant_a_capture_fails_and_names_why() {
    let host = host();
    let f = load(&host, "camera-snapshot");
    let export = f.export("snapshot").unwrap();
    let front = Camera::start(
        "front",
        Box::new(TestPattern::new(64, 48, 30.0)),
        30.0,
        OpenAt::FirstUse,
    );
    let cases = [
        (
            CallOptions::default(),
            "null",
            "endpoint local has no camera",
        ),
        (
            with_cameras(&[], &["front"]),
            "null",
            "endpoint local grants this function no camera (it has: front)",
        ),
        (
            with_cameras(&[&front], &["back"]),
            r#""back""#,
            "camera back on endpoint local is not granted to this function",
        ),
        (
            with_cameras(&[&front], &[]),
            r#""side""#,
            "endpoint local has no camera named side (granted: front)",
        ),
    ];
    for (options, device, message) in cases {
        let args = export.args_from_json_strs(&[device, "0", "0"]).unwrap();
        let out = host
            .call(&f, export, &args, &Limits::default(), &options)
            .await
            .unwrap();
        let v = export.result_to_json(out.result.as_ref()).unwrap();
        assert_eq!(v["err"], message);
    }
    assert_eq!(front.opens(), 0, "no call reached the device");
    // The list shows only what is granted.
    let devices = f.export("devices").unwrap();
    let out = host
        .call(
            &f,
            devices,
            &[],
            &Limits::default(),
            &with_cameras(&[&front], &["back"]),
        )
        .await
        .unwrap();
    assert_eq!(
        devices.result_to_json(out.result.as_ref()).unwrap(),
        serde_json::json!(["front"])
    );
}

#[tokio::test]
async fn a_failing_device_gives_clear_errors_then_recovers() {
    let pattern = TestPattern::new(64, 48, 100.0);
    let fault = pattern.fault_switch();
    let camera = Camera::start("flaky", Box::new(pattern), 100.0, OpenAt::Start);
    let first = camera.capture(None).await.unwrap();

    fault.store(true, Ordering::SeqCst);
    let e = camera.capture(Some(first.sequence)).await.unwrap_err();
    assert!(
        e.starts_with("camera flaky is unavailable (the device stopped delivering frames"),
        "{e}"
    );
    assert!(e.contains("reopening in 100 ms"), "{e}");
    // While it is down, callers are told so at once, and reopening backs off:
    // wait for the first reopen to have been tried.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        let e = camera.capture(None).await.unwrap_err();
        if e.contains("cannot open it") || std::time::Instant::now() > deadline {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        e.contains("cannot open it: the device does not answer"),
        "{e}"
    );
    assert!(e.contains("reopening in 200 ms"), "{e}");

    fault.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let back = loop {
        match camera.capture(None).await {
            Ok(f) => break f,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(back.sequence > first.sequence);
    assert_eq!(camera.opens(), 3, "opened, failed to reopen once, reopened");
}

#[tokio::test]
async fn a_real_camera_is_captured_when_there_is_one() {
    let path = std::path::Path::new("/dev/video0");
    let mut v4l2 = ferry_host::camera::V4l2::new(path, Some((640, 480)));
    if !path.exists() {
        eprintln!("SKIPPED capture from /dev/video0: this machine has no V4L2 device");
        // What an endpoint without the device reports instead.
        let e = v4l2.open().unwrap_err();
        assert!(
            e.contains("/dev/video0") && e.contains("No such file"),
            "{e}"
        );
        return;
    }
    let camera = Camera::start("video0", Box::new(v4l2), 30.0, OpenAt::Start);
    let frame = camera.capture(None).await.unwrap();
    assert!(frame.width > 0 && frame.height > 0 && !frame.data.is_empty());
}
