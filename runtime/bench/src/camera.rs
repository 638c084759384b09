//! `ferry bench camera`: frames served by one camera broker to 1, 8 and 32
//! concurrent callers (guests capturing through `ferry:host/camera`), and
//! the latency the broker adds over reading the device directly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_host::camera::{Backend, TestPattern};
use ferry_host::{CallOptions, Camera, Host, HostConfig, Limits, OpenAt};

use crate::median;

/// The test pattern's pace: high enough that drawing, not the clock, bounds it.
const FPS: f32 = 1000.0;

pub fn run(component: Option<PathBuf>, seconds: f64) -> anyhow::Result<()> {
    let path = ferry_local::component("camera-snapshot", component)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(measure(path, Duration::from_secs_f64(seconds)))
}

async fn measure(path: PathBuf, window: Duration) -> anyhow::Result<()> {
    let host = Host::new(HostConfig::default())?;
    let f = host.load_file(&path)?;
    println!("## ferry bench camera");
    println!();
    println!(
        "test-pattern device (rgb8, paced at up to {FPS} fps; drawing a frame bounds it), one broker; callers are guests calling `grab`, each asking for a frame newer than its last, for {:.1} s per row",
        window.as_secs_f64()
    );
    println!();
    println!(
        "| size | callers | frames/s served (all callers) | per caller | device frames/s | frames shared per device frame |"
    );
    println!("|---|---|---|---|---|---|");
    let mut latency = Vec::new();
    for (w, h) in [(224u32, 224u32), (1280, 720)] {
        for callers in [1usize, 8, 32] {
            let camera = Camera::start(
                "bench",
                Box::new(TestPattern::new(w, h, FPS)),
                FPS,
                OpenAt::Start,
            );
            let options = CallOptions {
                camera: vec![ferry_host::Lent::to_all(camera.clone())],
                ..CallOptions::default()
            };
            // Warm: compile, open, first frame.
            grab(&host, &f, &options, w, h, None).await?;
            let (served0, grabs0) = (camera.served(), camera.grabs());
            let start = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..callers {
                let (host, f, options) = (host.clone(), f.clone(), options.clone());
                set.spawn(async move {
                    let mut last = None;
                    let mut n = 0u64;
                    while start.elapsed() < window {
                        last = Some(grab(&host, &f, &options, w, h, last).await?);
                        n += 1;
                    }
                    anyhow::Ok(n)
                });
            }
            let mut total = 0;
            for n in set.join_all().await {
                total += n?;
            }
            let secs = start.elapsed().as_secs_f64();
            let device = (camera.grabs() - grabs0) as f64 / secs;
            let served = (camera.served() - served0) as f64 / secs;
            debug_assert!(served >= total as f64 / secs * 0.99);
            println!(
                "| {w}x{h} | {callers} | {:.0} | {:.1} | {device:.0} | {:.1} |",
                total as f64 / secs,
                total as f64 / secs / callers as f64,
                served / device.max(f64::MIN_POSITIVE)
            );
            camera.shutdown();
        }
        latency.push(((w, h), broker_latency(w, h).await?));
    }
    println!();
    println!("Latency of one frame to one caller (native, no guest), medians of 300:");
    println!();
    println!(
        "| size | direct read (grab on this thread) | through the broker | added by the broker |"
    );
    println!("|---|---|---|---|");
    for ((w, h), (direct, broker)) in latency {
        println!(
            "| {w}x{h} | {:.3} ms | {:.3} ms | {:+.3} ms |",
            direct.as_secs_f64() * 1e3,
            broker.as_secs_f64() * 1e3,
            (broker.as_secs_f64() - direct.as_secs_f64()) * 1e3
        );
    }
    Ok(())
}

async fn grab(
    host: &Host,
    f: &ferry_host::Function,
    options: &CallOptions,
    w: u32,
    h: u32,
    newer_than: Option<u64>,
) -> anyhow::Result<u64> {
    let export = f.export("grab")?;
    let newer = newer_than.map_or("null".to_owned(), |n| n.to_string());
    let args = export.args_from_json_strs(&[&w.to_string(), &h.to_string(), &newer])?;
    let out = host
        .call(f, export, &args, &Limits::default(), options)
        .await?;
    let v = export.result_to_json(out.result.as_ref())?;
    v["ok"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("grab failed: {v}"))
}

/// Median time to the next frame: read directly from the backend, and
/// asked of a broker over the same backend (newer than the last each time).
async fn broker_latency(w: u32, h: u32) -> anyhow::Result<(Duration, Duration)> {
    let mut direct = TestPattern::new(w, h, FPS);
    direct.open().map_err(anyhow::Error::msg)?;
    let mut times = Vec::new();
    for i in 0..330 {
        let t = Instant::now();
        let frame = direct.grab().map_err(anyhow::Error::msg)?;
        std::hint::black_box(&frame);
        if i >= 30 {
            times.push(t.elapsed());
        }
    }
    direct.close();
    let d = median(times);
    let camera: Arc<Camera> = Camera::start(
        "latency",
        Box::new(TestPattern::new(w, h, FPS)),
        FPS,
        OpenAt::Start,
    );
    let mut times = Vec::new();
    let mut last = None;
    for i in 0..330 {
        let t = Instant::now();
        let frame = camera.capture(last).await.map_err(anyhow::Error::msg)?;
        last = Some(frame.sequence);
        if i >= 30 {
            times.push(t.elapsed());
        }
    }
    camera.shutdown();
    Ok((d, median(times)))
}
