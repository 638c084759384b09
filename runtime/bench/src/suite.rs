//! `ferry bench` with no subcommand: the whole suite in one sitting, one
//! table, and `--json` with every sample and every check.
//!
//! Against a fabric it starts itself (one per durability mode, on a fresh
//! data directory each), or with `--service URL` against a running service
//! and its endpoint, where what needs a fabric of its own (the durability
//! modes, a second endpoint, an endpoint restart, the queue, blobs) is left
//! out and said so. `--quick` runs small counts; every result is checked all
//! the same, and a failed check fails the command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_client::{Client, ClientTls};
use ferry_host::{Host, HostConfig};
use ferry_proto::v1::{StatusResponse, TaskState};
use ferry_service::{Durability, ServiceConfig};
use serde_json::json;

use crate::report::{Figure, Report, Unit};
use crate::{cold, dataflow, peers, pi_blocks};

/// The suite's own flags (`ferry bench [--quick] [--json FILE] …`).
#[derive(clap::Args, Clone, Default)]
pub struct SuiteArgs {
    /// Small counts, for CI: every result is still checked, and a wrong or
    /// lost one fails the run.
    #[arg(long)]
    pub quick: bool,
    /// Write the figures, with their samples, targets and the checks made,
    /// as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also run Parsl, Dask and Ray on the no-op, round-trip and pi
    /// workloads (`bench/peers/run.sh`, which installs them from PyPI into a
    /// virtualenv), turn about with ferry's own runs, and give the ratios.
    #[arg(long)]
    pub peers: bool,
    /// With `--peers`: draw the plots of BENCHMARKS.md into this directory.
    #[arg(long, value_name = "DIR", requires = "peers")]
    pub plot: Option<PathBuf>,
    /// With `--service`: the endpoint whose tasks are measured.
    #[arg(long, default_value = "local")]
    pub endpoint: String,
}

/// A running service to measure instead of a fabric of the suite's own.
pub struct Remote {
    pub url: String,
    pub token: Option<String>,
    pub tls: ClientTls,
}

/// The counts of one sitting.
pub(crate) struct Sizes {
    pub instantiate: (u32, u32),
    pub noop_tasks: usize,
    pub noop_runs: u32,
    pub rtt_iterations: u32,
    pub cold_runs: u32,
    pub pi_points: u64,
    pub pi_runs: u32,
    pub kmeans_points: usize,
    pub kmeans_runs: u32,
    pub blob_mib: u64,
    pub blob_runs: u32,
    pub queue_tasks: usize,
    pub dataflow_links: usize,
    pub dataflow_runs: u32,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        instantiate: (2000, 31),
        noop_tasks: 20_000,
        noop_runs: 5,
        rtt_iterations: 2000,
        cold_runs: 9,
        pi_points: 1_000_000,
        pi_runs: 3,
        kmeans_points: 400_000,
        kmeans_runs: 3,
        blob_mib: 512,
        blob_runs: 3,
        queue_tasks: 1_000_000,
        dataflow_links: 5000,
        dataflow_runs: 3,
    };
    const QUICK: Sizes = Sizes {
        instantiate: (100, 3),
        noop_tasks: 300,
        noop_runs: 1,
        rtt_iterations: 30,
        cold_runs: 2,
        pi_points: 10_000,
        pi_runs: 1,
        kmeans_points: 5000,
        kmeans_runs: 1,
        blob_mib: 4,
        blob_runs: 1,
        queue_tasks: 2000,
        dataflow_links: 20,
        dataflow_runs: 1,
    };
}

/// The worker count of an endpoint started here: its default concurrency,
/// this machine's cores.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The example components the suite sends.
pub(crate) struct Components {
    pub noop: Vec<u8>,
    pub pi: Vec<u8>,
    pub dataflow: Vec<u8>,
}

impl Components {
    fn load() -> anyhow::Result<Self> {
        let read = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path = ferry_local::component(name, None)?;
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(Components {
            noop: read("noop")?,
            pi: read("pi")?,
            dataflow: read("dataflow-probe")?,
        })
    }
}

pub(crate) fn run(args: SuiteArgs, remote: Option<Remote>) -> anyhow::Result<ExitCode> {
    let sizes = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let components = Components::load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut report = Report::default();
    let scratch = std::env::temp_dir().join(format!("ferry-bench-suite-{}", std::process::id()));
    let result = (|| {
        host_calls(&runtime, &sizes, &mut report)?;
        match &remote {
            Some(r) => runtime.block_on(remote_fabric(
                r,
                &args.endpoint,
                &sizes,
                &components,
                &mut report,
            ))?,
            None => {
                let floor = crate::fsync_floor(&std::env::temp_dir(), 200)?;
                report.add(Figure::seconds(
                    "rtt",
                    "fsync floor: 4 KiB write + fdatasync",
                    &[floor],
                ));
                for (i, d) in Durability::ALL.into_iter().enumerate() {
                    let dir = scratch.join(format!("fabric-{i}"));
                    runtime.block_on(own_fabric(
                        d,
                        &dir,
                        floor,
                        &sizes,
                        &components,
                        &mut report,
                    ))?;
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        crate::kmeans::bench(
            &kmeans_args(sizes.kmeans_points),
            sizes.kmeans_runs,
            &mut report,
        )?;
        if remote.is_some() {
            for bench in ["blob", "queue"] {
                report.skip(bench, "with --service: it starts a service of its own");
            }
        } else {
            crate::blob::run(
                None,
                sizes.blob_mib,
                sizes.blob_runs,
                Some(scratch.clone()),
                &mut report,
            )?;
            crate::queue::run(None, sizes.queue_tasks, &mut report)?;
        }
        if args.peers {
            let sitting = peers::run(&runtime, &components, args.quick, &scratch, &mut report)?;
            if let Some(dir) = &args.plot {
                crate::plot::draw(&sitting, dir)?;
            }
        }
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    let title = match &remote {
        Some(r) => format!("ferry bench: {} on {}", args.endpoint, r.url),
        None => "ferry bench: a fabric in this process on loopback, tokens on".to_owned(),
    };
    report.print(&title);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json(machine(args.quick)))?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.failed_checks() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The seed's k-means settings, on `points` points.
fn kmeans_args(points: usize) -> ferry_local::KmeansArgs {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: ferry_local::KmeansArgs,
    }
    let points = points.to_string();
    <Defaults as clap::Parser>::parse_from(["kmeans", "--points", points.as_str()]).args
}

/// Calls in this process's host: instantiate + call + drop, and one pi.
fn host_calls(
    runtime: &tokio::runtime::Runtime,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let host = Host::new(HostConfig::default())?;
    let (batch, batches) = sizes.instantiate;
    runtime.block_on(crate::instantiate(&host, None, batch, batches, report))?;
    runtime.block_on(crate::pi(&host, None, sizes.pi_points, 11, report))?;
    Ok(())
}

/// What the machine is, for the JSON.
fn machine(quick: bool) -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned());
    let mem_kib: Option<u64> = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok());
    json!({
        "ferry": env!("CARGO_PKG_VERSION"),
        "cores": workers(),
        "cpu": cpu,
        "memory_gib": mem_kib.map(|k| k as f64 / (1u64 << 20) as f64),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "arch": std::env::consts::ARCH,
        "quick": quick,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

fn count(s: &StatusResponse, states: &[TaskState]) -> u64 {
    s.tasks
        .iter()
        .filter(|c| states.iter().any(|&st| c.state == st as i32))
        .map(|c| c.count)
        .sum()
}

/// Checks that every task submitted since `before` succeeded: `submitted`
/// more succeeded, and none failed, was cancelled or is still unfinished.
async fn none_lost(
    client: &Client,
    before: &StatusResponse,
    submitted: u64,
    what: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let now = client.status().await?;
    let ok = count(&now, &[TaskState::Succeeded]) - count(before, &[TaskState::Succeeded]);
    let bad = [TaskState::Failed, TaskState::Cancelled];
    let failed = count(&now, &bad) - count(before, &bad);
    let open = [
        TaskState::WaitingForEndpoint,
        TaskState::WaitingForDependencies,
        TaskState::Dispatched,
        TaskState::Running,
    ];
    let unfinished = count(&now, &open);
    report.check(
        "noop",
        format!(
            "{what}: {ok} of {submitted} tasks succeeded in the service's count, {failed} failed or cancelled, {unfinished} unfinished"
        ),
        ok == submitted && failed == 0 && unfinished == 0,
    );
    Ok(())
}

/// The fabric benchmarks against a fabric of the suite's own in `d` mode.
async fn own_fabric(
    d: Durability,
    dir: &Path,
    floor: Duration,
    sizes: &Sizes,
    components: &Components,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut config = ServiceConfig::new(dir);
    config.durability = d;
    let fabric =
        ferry_local::Fabric::start_with(config, "127.0.0.1:0".parse()?, None, None).await?;
    let client = ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls).await?;
    let noop = client.register(&components.noop).await?.id;

    let before = client.status().await?;
    let rates =
        crate::noop_rates(&client, "local", &noop, sizes.noop_tasks, sizes.noop_runs).await?;
    let submitted = sizes.noop_tasks as u64 * u64::from(sizes.noop_runs + 1);
    none_lost(&client, &before, submitted, &format!("noop, {d}"), report).await?;
    let mut fig = Figure::new("noop", format!("{d}, 1 endpoint"), Unit::TasksPerSec, rates);
    fig = match d {
        Durability::Strict => fig.target("≥ 100,000", 100_000.0, true),
        Durability::None => fig.target("≥ 150,000", 150_000.0, true),
        Durability::Group => fig,
    };
    report.add(fig);

    rtt(
        &client,
        "local",
        &noop,
        &d.to_string(),
        sizes,
        Some((d, floor)),
        report,
    )
    .await?;

    if d == Durability::Strict {
        two_endpoints(&fabric, &client, &noop, dir, sizes, report).await?;
        fabric_workloads(&client, "local", components, sizes, report).await?;
        cold::restart(
            &client,
            &fabric.url,
            &fabric.tls,
            dir,
            &noop,
            sizes.cold_runs,
            report,
        )
        .await?;
    }
    drop(client);
    fabric.stop().await
}

/// Round trips: p50 (the figure's median) and p99.
async fn rtt(
    client: &Client,
    endpoint: &str,
    noop: &str,
    mode: &str,
    sizes: &Sizes,
    target: Option<(Durability, Duration)>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let times = crate::rtt_times(client, endpoint, noop, sizes.rtt_iterations).await?;
    report.check(
        "rtt",
        format!("{} round trips of `noop` returned, {mode}", times.len()),
        true,
    );
    let p99 = times[((times.len() - 1) as f64 * 0.99) as usize];
    let mut fig = Figure::seconds("rtt", format!("{mode}: submit to result, p50"), &times);
    fig = match target {
        Some((Durability::Strict, floor)) => {
            let limit = floor * 2 + Duration::from_micros(100);
            fig.target(
                format!("≤ 2 × floor + 0.1 ms = {}", crate::fmt(limit)),
                limit.as_secs_f64(),
                false,
            )
        }
        Some((Durability::None, _)) => fig.target("≤ 0.1 ms", 1e-4, false),
        _ => fig,
    };
    report.add(fig);
    report.add(Figure::seconds("rtt", format!("{mode}: p99"), &[p99]));
    Ok(())
}

/// The workloads any fabric can run: pi in blocks, a new component's first
/// call, and dataflow.
async fn fabric_workloads(
    client: &Client,
    endpoint: &str,
    components: &Components,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let pi = client.register(&components.pi).await?.id;
    pi_blocks::run(
        client,
        endpoint,
        &pi,
        sizes.pi_points,
        sizes.pi_runs,
        report,
    )
    .await?;
    cold::first_call(client, endpoint, &components.noop, sizes.cold_runs, report).await?;
    let probe = client.register(&components.dataflow).await?.id;
    dataflow::run(
        client,
        endpoint,
        &probe,
        sizes.dataflow_links,
        sizes.dataflow_runs,
        report,
    )
    .await
}

/// No-op tasks through two sessions of `local` (two endpoint processes
/// serving one queue, here in one process).
async fn two_endpoints(
    fabric: &ferry_local::Fabric,
    client: &Client,
    noop: &str,
    dir: &Path,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut config = ferry_endpoint::EndpointConfig::new("local", fabric.url.clone());
    config.credential = Some(fabric.endpoint_credential.clone());
    config.tls = fabric.tls.clone();
    config.cache_dir = Some(dir.join("second-endpoint"));
    config.gpu = ferry_host::GpuChoice::None;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(ferry_endpoint::run(config, async {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !client
        .status()
        .await?
        .endpoints
        .iter()
        .any(|e| e.name == "local" && e.sessions >= 2)
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the second endpoint did not connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = client.status().await?;
    let rates = crate::noop_rates(client, "local", noop, sizes.noop_tasks, sizes.noop_runs).await;
    let _ = stop.send(());
    second.await??;
    let submitted = sizes.noop_tasks as u64 * u64::from(sizes.noop_runs + 1);
    none_lost(
        client,
        &before,
        submitted,
        "noop, strict, 2 endpoints",
        report,
    )
    .await?;
    report.add(Figure::new(
        "noop",
        "strict, 2 endpoints",
        Unit::TasksPerSec,
        rates?,
    ));
    Ok(())
}

/// The fabric benchmarks against a running service.
async fn remote_fabric(
    remote: &Remote,
    endpoint: &str,
    sizes: &Sizes,
    components: &Components,
    report: &mut Report,
) -> anyhow::Result<()> {
    let client = Client::connect_with(&remote.url, remote.token.as_deref(), &remote.tls).await?;
    let status = client.status().await?;
    anyhow::ensure!(
        status
            .endpoints
            .iter()
            .any(|e| e.name == endpoint && e.online),
        "endpoint `{endpoint}` is not online at {} (ferry status lists the endpoints)",
        remote.url
    );
    let mode = if status.durability.is_empty() {
        "the service's durability".to_owned()
    } else {
        status.durability.clone()
    };
    let noop = client.register(&components.noop).await?.id;
    let rates =
        crate::noop_rates(&client, endpoint, &noop, sizes.noop_tasks, sizes.noop_runs).await?;
    report.check(
        "noop",
        format!(
            "{} no-op tasks returned",
            sizes.noop_tasks as u64 * u64::from(sizes.noop_runs + 1)
        ),
        true,
    );
    report.add(Figure::new(
        "noop",
        format!("{mode}, `{endpoint}`"),
        Unit::TasksPerSec,
        rates,
    ));
    rtt(&client, endpoint, &noop, &mode, sizes, None, report).await?;
    fabric_workloads(&client, endpoint, components, sizes, report).await?;
    report.skip(
        "noop",
        "other durability modes and 2 endpoints: with --service, the service's own",
    );
    report.skip(
        "cold start",
        "endpoint restart: with --service, the endpoint is not the suite's",
    );
    Ok(())
}
