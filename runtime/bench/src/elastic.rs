//! The seed's elasticity picture: an elastic endpoint with no block, a
//! burst of pi tasks, then idle. Its manager asks its provider (Slurm where
//! one runs, else local processes) for blocks; their workers join, run the
//! burst, are drained once idle past `max_idletime`, and leave. Sampled
//! every 100 ms from `ferry status`, and drawn as workers and outstanding
//! tasks over time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::Client;
use ferry_endpoint::{EndpointConfig, ProviderConfig, ProviderKind};
use ferry_proto::v1::TaskState;
use plotters::prelude::*;

use crate::native_pi;
use crate::plot::{Area, draw_error, font, png};

/// What `ferry bench elastic` is asked.
pub struct Args {
    pub tasks: u64,
    pub points: u64,
    pub max_blocks: u32,
    pub max_idletime: Duration,
    pub period: Duration,
    /// `slurm` or `local`; unset, Slurm where `sinfo` answers.
    pub provider: Option<String>,
    pub partition: Option<String>,
    pub plot: PathBuf,
}

/// One look at the endpoint.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    workers: u32,
    blocks: u32,
    outstanding: u64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let slurm = match a.provider.as_deref() {
        None => ferry_scale::slurm_available(),
        Some("slurm") => true,
        Some("local") => false,
        Some(other) => anyhow::bail!("--provider {other}: use slurm or local"),
    };
    let dir = std::env::temp_dir().join(format!("ferry-bench-elastic-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(measure(&a, slurm, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(a: &Args, slurm: bool, dir: &Path) -> anyhow::Result<()> {
    let pi = ferry_local::component("pi", None)?;
    let fabric = ferry_local::Fabric::start(dir, "127.0.0.1:0".parse()?, Some(1)).await?;
    let client = ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls).await?;
    let f = client.register(&std::fs::read(&pi)?).await?.id;
    let name = "elastic";
    let (_, credential) = client.register_endpoint(name, false).await?;

    let mut config = EndpointConfig::new(name, fabric.url.clone());
    config.credential = Some(credential);
    config.cache_dir = Some(dir.join("cache"));
    config.program = vec![
        std::env::current_exe()?.display().to_string(),
        "endpoint".into(),
        "start".into(),
    ];
    let settings = ferry_scale::Settings {
        min_blocks: 0,
        init_blocks: 0,
        max_blocks: a.max_blocks,
        workers_per_block: 1,
        worker_slots: 1,
        parallelism: 1.0,
        max_idletime: a.max_idletime,
        period: a.period,
    };
    let kind = if slurm {
        ProviderKind::Slurm(ferry_scale::SlurmConfig {
            partition: a.partition.clone(),
            walltime: "00:30:00".into(),
            ..Default::default()
        })
    } else {
        ProviderKind::Local
    };
    let provider_name = kind.name();
    config.provider = Some(ProviderConfig {
        kind,
        settings,
        command: None,
        work_dir: Some(dir.join("blocks")),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let manager = tokio::spawn(ferry_endpoint::run(config, async move {
        let mut s = stopped;
        let _ = s.wait_for(|s| *s).await;
    }));

    let start = Instant::now();
    let look = move |client: Client| async move {
        let s = client.status().await.ok()?;
        let e = s.endpoints.into_iter().find(|e| e.name == "elastic")?;
        Some(Sample {
            secs: start.elapsed().as_secs_f64(),
            workers: e.workers.len() as u32,
            blocks: e.blocks.len() as u32,
            outstanding: e.queued + u64::from(e.in_flight),
        })
    };
    // The sampler runs until told to stop, whatever the burst does.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler_client = client.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut done_rx => break,
                _ = tick.tick() => {}
            }
            if let Some(s) = look(sampler_client.clone()).await {
                samples.push(s);
            }
        }
        samples
    });

    tokio::time::sleep(Duration::from_secs(3)).await;
    let burst_at = ferry_proto::now_ms();
    let burst_secs = start.elapsed().as_secs_f64();
    let seeds: Vec<u64> = (0..a.tasks).collect();
    let futures = client
        .submit_batch::<_, f64>(name, &f, "pi", seeds.iter().map(|&s| (a.points, s)))
        .await?;
    let ids: Vec<String> = futures.iter().map(|f| f.task_id().to_owned()).collect();
    let mut wrong = 0;
    for (seed, fut) in seeds.iter().zip(futures) {
        if fut.await? != native_pi::pi(a.points, *seed) {
            wrong += 1;
        }
    }
    anyhow::ensure!(wrong == 0, "{wrong} results differ from the native ones");
    // When the first task was leased to a worker, and when the last ended.
    let (mut first_lease, mut last_end, mut ran_twice) = (i64::MAX, 0i64, 0);
    for id in &ids {
        let t = client.task(id).await?;
        for h in &t.history {
            if h.state == TaskState::Dispatched as i32 {
                first_lease = first_lease.min(h.at_ms);
            }
        }
        last_end = last_end.max(t.history.last().map_or(0, |h| h.at_ms));
        if t.attempts > 0 || t.lost > 0 {
            ran_twice += 1;
        }
    }
    let idle_secs = burst_secs + (last_end - burst_at) as f64 / 1e3;
    // Idle: drained, and every worker gone.
    let deadline = Instant::now() + a.max_idletime * 8 + Duration::from_secs(120);
    let gone_secs = loop {
        if let Some(s) = look(client.clone()).await
            && s.workers == 0
            && s.blocks == 0
        {
            break s.secs;
        }
        anyhow::ensure!(Instant::now() < deadline, "the blocks were not scaled in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = done_tx.send(());
    let samples = sampler.await?;
    let _ = stop.send(true);
    manager.await??;
    fabric.stop().await?;

    let peak = samples.iter().map(|s| s.workers).max().unwrap_or(0);
    let first_lease_secs = (first_lease - burst_at) as f64 / 1e3;
    println!("## ferry bench elastic");
    println!();
    println!(
        "{} pi({}) tasks at once to an elastic endpoint with no block ({provider_name} provider, max_blocks {}, one worker of one slot a block, max_idletime {:?}, period {:?})",
        a.tasks, a.points, a.max_blocks, a.max_idletime, a.period
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| burst → the first new worker's first task (leased) | {first_lease_secs:.2} s |");
    println!(
        "| burst → all {} answered | {:.2} s |",
        a.tasks,
        idle_secs - burst_secs
    );
    println!(
        "| idle → every block scaled in (workers drained and gone) | {:.2} s |",
        gone_secs - idle_secs
    );
    println!("| most workers at once | {peak} |");
    println!("| tasks that ran more than once | {ran_twice} |");
    font()?;
    if let Some(parent) = a.plot.parent() {
        std::fs::create_dir_all(parent)?;
    }
    png(&a.plot, |root| {
        draw(root, &samples, burst_secs, idle_secs, provider_name)
    })?;
    println!();
    println!("plot: {}", a.plot.display());
    Ok(())
}

fn draw(
    root: &Area,
    samples: &[Sample],
    burst: f64,
    idle: f64,
    provider: &str,
) -> anyhow::Result<()> {
    let end = samples.last().map_or(1.0, |s| s.secs).max(1.0);
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
    let most = samples
        .iter()
        .map(|s| s.outstanding)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut tasks = ChartBuilder::on(&top)
        .caption(
            format!("An elastic endpoint on the {provider} provider: a burst, then idle"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..end, 0u64..most + most / 10 + 1)
        .map_err(draw_error)?;
    tasks
        .configure_mesh()
        .y_desc("tasks queued or running")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_error)?;
    tasks
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.secs, s.outstanding)),
            RGBColor(0xd9, 0x5f, 0x02).stroke_width(2),
        ))
        .map_err(draw_error)?;
    let peak = samples
        .iter()
        .map(|s| s.workers.max(s.blocks))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut workers = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..end, 0u32..peak + 1)
        .map_err(draw_error)?;
    workers
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("blocks and workers")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_error)?;
    let blue = RGBColor(0x1f, 0x5f, 0xa8);
    let light = RGBColor(0x5d, 0xa5, 0xe8);
    workers
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.secs, s.blocks)),
            light.stroke_width(2),
        ))
        .map_err(draw_error)?
        .label("blocks held (pending, running, draining)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], light.stroke_width(2)));
    workers
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.secs, s.workers)),
            blue.stroke_width(3),
        ))
        .map_err(draw_error)?
        .label("workers connected")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(3)));
    for (at, what) in [(burst, "burst"), (idle, "idle")] {
        workers
            .draw_series(LineSeries::new(
                [(at, 0), (at, peak + 1)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(draw_error)?;
        workers
            .draw_series([Text::new(
                what.to_owned(),
                (at, peak + 1),
                ("sans-serif", 14).into_font(),
            )])
            .map_err(draw_error)?;
    }
    workers
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(draw_error)?;
    Ok(())
}
