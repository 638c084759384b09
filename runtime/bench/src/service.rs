//! `ferry bench service`: what the service itself costs, apart from tasks:
//! opening a store full of finished tasks, and registering a large
//! component.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_service::{RedbStore, Service, ServiceConfig, Store, TaskRecord, TaskState};

use crate::{fmt, median};

pub fn run(
    component: Option<PathBuf>,
    finished: u64,
    mib: u64,
    runs: u32,
    keep: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = tempfile_dir("ferry-bench-service")?;
    let result = (|| {
        let store = keep.clone().unwrap_or_else(|| dir.join("store"));
        let (startup, rss) = startup(&store, finished, runs)?;
        let (register, size) = register(&dir.join("register"), component, mib, runs)?;
        println!("## ferry bench service");
        println!();
        println!("medians of {runs} runs");
        println!();
        println!("| metric | value |");
        println!("|---|---|");
        println!(
            "| start-up with {finished} finished tasks in the store | {} |",
            fmt(startup)
        );
        println!(
            "| service RSS after that start-up | {} MiB |",
            rss / (1 << 20)
        );
        println!(
            "| register a {:.1} MiB component (upload, check, store) | {} |",
            size as f64 / (1 << 20) as f64,
            fmt(register)
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn finished_task(i: u64) -> TaskRecord {
    let at = 1_700_000_000_000 + i as i64;
    let mut t = TaskRecord::new(
        format!("{at:012x}-{:08x}-bench000", i & 0xffff_ffff),
        "local".into(),
        "0".repeat(64),
        "noop".into(),
        at,
    );
    t.args = vec![0x90];
    for state in [
        TaskState::Dispatched,
        TaskState::Running,
        TaskState::Succeeded,
    ] {
        t.set_state(state, at);
    }
    t.result = Some(vec![0xc0]);
    t
}

/// Fills a store with `finished` succeeded tasks, then opens a service on it
/// `runs` times; returns the median open and the RSS after the last.
fn startup(dir: &std::path::Path, finished: u64, runs: u32) -> anyhow::Result<(Duration, u64)> {
    {
        let store = RedbStore::open(dir)?;
        let mut i = 0;
        while i < finished {
            let n = (finished - i).min(50_000);
            let batch: Vec<TaskRecord> = (i..i + n).map(finished_task).collect();
            store.put_tasks(&batch)?;
            i += n;
        }
    }
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let service = Service::open(ServiceConfig::new(dir))?;
        times.push(start.elapsed());
        rss = rss.max(rss_bytes());
        drop(service);
    }
    Ok((median(times), rss))
}

/// The component padded with a custom section to `mib` MiB (a custom section
/// is valid anywhere in a component), registered on a fresh service each run.
fn register(
    dir: &std::path::Path,
    component: Option<PathBuf>,
    mib: u64,
    runs: u32,
) -> anyhow::Result<(Duration, usize)> {
    let path = ferry_local::component("kmeans", component)?;
    let base = std::fs::read(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut times = Vec::new();
    let mut size = 0;
    for run in 0..runs {
        let bytes = padded(&base, (mib << 20) as usize, run);
        size = bytes.len();
        let data_dir = dir.join(run.to_string());
        let took = runtime.block_on(async {
            let service = Service::open(ServiceConfig::new(&data_dir))?;
            let token = service
                .bootstrap()?
                .context("a fresh service makes its admin")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(service.serve(listener, async {
                let _ = stopped.await;
            }));
            let client = connect(&url, &token).await?;
            let start = Instant::now();
            client.register(&bytes).await?;
            let took = start.elapsed();
            let _ = stop.send(());
            server.await??;
            anyhow::Ok(took)
        })?;
        times.push(took);
    }
    Ok((median(times), size))
}

/// Connects once the service answers (it runs no endpoint here).
async fn connect(url: &str, token: &str) -> anyhow::Result<ferry_client::Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = ferry_client::Client::connect_as(url, Some(token)).await
            && c.status().await.is_ok()
        {
            return Ok(c);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service at {url} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `base` with a custom section appended so that the whole is `total` bytes;
/// `salt` makes each run's bytes (and so its id) new.
pub(crate) fn padded(base: &[u8], total: usize, salt: u32) -> Vec<u8> {
    let name = format!("ferry-bench-padding-{salt}");
    let mut out = base.to_vec();
    let payload = total.saturating_sub(base.len() + name.len() + 12);
    let mut body = Vec::with_capacity(name.len() + payload + 5);
    leb128(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.resize(body.len() + payload, 0xa5);
    out.push(0);
    leb128(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
