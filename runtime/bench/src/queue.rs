//! `ferry bench queue`: what a service holds for a million queued tasks,
//! and how soon it is ready again after `kill -9`. The service runs as its
//! own process (`ferry serve`), with no endpoint, so that its memory is its
//! own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::report::{Figure, Report, Unit};

/// One `ferry serve` on a fresh port; returns it and its URL.
fn serve(dir: &Path) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe().context("finding this ferry binary")?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ferry serve")?;
    let out = child.stdout.take().context("the service's stdout")?;
    // Read to its end, so that the service never writes to a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("ferry service on ") {
                let _ = tx.send(rest.split(',').next().unwrap_or_default().to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => Ok((child, url)),
        Err(_) => {
            let _ = child.kill();
            anyhow::bail!("ferry serve did not say where it listens")
        }
    }
}

/// Resident and peak memory of a process, in bytes.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Connects once the service answers a status call; returns the client and
/// when it first answered.
async fn answering(url: &str, token: &str) -> anyhow::Result<(ferry_client::Client, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(c) = ferry_client::Client::connect_as(url, Some(token)).await
            && c.status().await.is_ok()
        {
            return Ok((c, Instant::now()));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service at {url} never answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn queued(s: &ferry_proto::v1::StatusResponse) -> u64 {
    s.tasks
        .iter()
        .filter(|c| c.state == ferry_proto::v1::TaskState::WaitingForEndpoint as i32)
        .map(|c| c.count)
        .sum()
}

pub(crate) fn run(
    component: Option<std::path::PathBuf>,
    tasks: usize,
    report: &mut Report,
) -> anyhow::Result<ExitCode> {
    let path = ferry_local::component("noop", component)?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let dir = std::env::temp_dir().join(format!("ferry-bench-queue-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let (mut child, url) = serve(&dir)?;
        let token = ferry_local::admin_token(&dir)?;
        let (client, _) = answering(&url, &token).await?;
        let f = client.register(&bytes).await?;
        // Registered, never connected: its queue only grows.
        client.register_endpoint("queue", false).await?;
        let start = Instant::now();
        let ids = client
            .submit_batch_ids("queue", &f.id, "noop", std::iter::repeat_n((), tasks), &Default::default())
            .await?;
        let admitted = start.elapsed();
        anyhow::ensure!(ids.len() == tasks, "{} of {tasks} tasks admitted", ids.len());
        let (rss, peak) = memory(child.id())?;
        child.kill()?;
        child.wait()?;
        drop(client);
        let killed = Instant::now();
        let (mut child, url) = serve(&dir)?;
        let (client, answered) = answering(&url, &token).await?;
        let back = queued(&client.status().await?);
        child.kill()?;
        child.wait()?;
        report.check("queue", format!("{back} of {tasks} tasks queued after kill -9 and a restart"), back == tasks as u64);
        anyhow::ensure!(back == tasks as u64, "{back} of {tasks} tasks queued after the restart");
        let mib = rss as f64 / (1 << 20) as f64;
        let restart = (answered - killed).as_secs_f64();
        let rate = tasks as f64 / admitted.as_secs_f64();
        report.add(Figure::new("queue", format!("{tasks} queued: admission"), Unit::TasksPerSec, vec![rate]));
        let mut rss_fig = Figure::new("queue", format!("{tasks} queued: service RSS"), Unit::Mebibytes, vec![mib]);
        let mut restart_fig = Figure::new("queue", format!("{tasks} queued: kill -9 to answering"), Unit::Seconds, vec![restart]);
        if tasks >= 1_000_000 {
            rss_fig = rss_fig.target("≤ 1024 MiB", 1024.0, false);
            restart_fig = restart_fig.target("≤ 2 s", 2.0, false);
        }
        report.add(rss_fig);
        report.add(restart_fig);
        if !report.tables {
            return anyhow::Ok(());
        }
        println!("## ferry bench queue");
        println!();
        println!("{tasks} no-op tasks submitted to `ferry serve` (strict durability) with no endpoint, in batches of 1,000; then `kill -9` and a restart");
        println!();
        println!("| metric | value |");
        println!("|---|---|");
        println!("| admission | {:.0} tasks/s |", tasks as f64 / admitted.as_secs_f64());
        println!("| service RSS with them queued | {:.0} MiB ({:.0} bytes a task) |", rss as f64 / (1 << 20) as f64, rss as f64 / tasks as f64);
        println!("| service peak RSS | {:.0} MiB |", peak as f64 / (1 << 20) as f64);
        println!("| restart: kill -9 to answering, all queued | {} |", crate::fmt(answered - killed));
        println!("| targets | ≤ 1 GiB for 1,000,000; ready ≤ 2 s |");
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(ExitCode::SUCCESS)
}
