//! `ferry bench`: medians over repeated runs, printed as tables.
//!
//! These are measurements, not tests; compare ratios taken in one run. Each
//! benchmark is one module; the CLI hands its `bench` subcommand here, and
//! `ferry bench` alone runs the whole suite ([`suite`]).

mod blob;
mod camera;
mod cold;
mod dataflow;
mod elastic;
mod kmeans;
mod peers;
mod pi_blocks;
mod plot;
mod queue;
mod report;
mod security;
mod service;
mod suite;

pub use suite::{Remote, SuiteArgs};

use report::{Figure, Report};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_host::{CallOptions, Host, HostConfig, Limits};

/// The same source the `pi` component is built from, compiled natively here.
use pi_estimate as native_pi;

/// `ferry bench [SUBCOMMAND]`: one benchmark, or with none the whole suite.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub suite: SuiteArgs,
}

/// Runs `ferry bench`; `remote` is the service named with `--service`, if
/// any, for the suite to measure instead of a fabric of its own.
pub fn run_args(args: BenchArgs, remote: Option<Remote>) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(cmd) => run(cmd),
        None => suite::run(args.suite, remote),
    }
}

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Instantiate + call + drop of the no-op component.
    Instantiate {
        /// The `noop` component (default: build it from this checkout).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Calls per batch.
        #[arg(long, default_value_t = 2000)]
        batch: u32,
        /// Batches measured (the median batch is reported).
        #[arg(long, default_value_t = 31)]
        batches: u32,
    },
    /// No-op tasks end to end (client -> service -> endpoint -> back) against
    /// a fabric started in this process on loopback; completed tasks/s.
    Noop {
        #[arg(long)]
        component: Option<PathBuf>,
        /// Tasks per run, submitted in batches of 1,000 and then awaited.
        #[arg(long, default_value_t = 20_000)]
        tasks: usize,
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Measure with authentication off, with tokens, and with tokens
        /// over TLS, in this one run, and report what each costs.
        #[arg(long, conflicts_with = "durability")]
        security: bool,
        /// Measure with `strict`, `group` and `none` durability in this one
        /// run.
        #[arg(long)]
        durability: bool,
    },
    /// One no-op task submitted and awaited, repeated; p50 and p99.
    Rtt {
        #[arg(long)]
        component: Option<PathBuf>,
        #[arg(long, default_value_t = 2_000)]
        iterations: u32,
        /// Measure with authentication off, with tokens, and with tokens
        /// over TLS, in this one run, and report what each costs.
        #[arg(long, conflicts_with = "durability")]
        security: bool,
        /// Measure with `strict`, `group` and `none` durability in this one
        /// run.
        #[arg(long)]
        durability: bool,
    },
    /// The seed's k-means: Wasm CPU against the same Rust compiled natively,
    /// and the GPU path against both, on this machine's best adapter.
    Kmeans {
        #[command(flatten)]
        args: ferry_local::KmeansArgs,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
    /// A blob by reference into a function that checksums it: upload,
    /// fetch by the endpoint, read by the guest; MB/s and peak memory.
    Blob {
        /// The `blob-probe` component (default: build it from this checkout).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Blob size in MiB.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Runs (the median is reported), each with a fresh blob.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Where the input files, the service's store and the caches live
        /// (default: the temp dir); it needs about 3 × (runs + 1) × the blob
        /// size free. A tmpfs such as /dev/shm takes the disk out of the
        /// measurement.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Frames served by one camera broker to 1, 8 and 32 concurrent guest
    /// callers at 224x224 and 1280x720, and the latency the broker adds.
    Camera {
        /// The `camera-snapshot` component (default: build it from this checkout).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Dependency edges resolved in the service: a chain of tasks each
    /// taking the last one's result, against the client driving the chain;
    /// and a fan-in.
    Dataflow {
        /// The `dataflow-probe` component (default: build it from this checkout).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Links of the chain, and leaves of the fan-in.
        #[arg(long, default_value_t = 10_000)]
        links: usize,
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// A million no-op tasks queued with no endpoint: the service's memory
    /// for them, and its restart after `kill -9` until it answers with all
    /// of them queued.
    Queue {
        #[arg(long)]
        component: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        tasks: usize,
    },
    /// The service's own costs: start-up on a store of finished tasks, and
    /// registering a large component.
    Service {
        /// The component to pad and register (default: `kmeans`, built
        /// from this checkout).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Finished tasks in the store at start-up.
        #[arg(long, default_value_t = 1_000_000)]
        finished: u64,
        /// Size of the registered component in MiB.
        #[arg(long, default_value_t = 10)]
        mib: u64,
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Make the store of finished tasks here and keep it (to start
        /// `ferry serve` on it), instead of in a temporary directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// The seed's elasticity picture: a burst of pi tasks to an elastic
    /// endpoint with no block, then idle; workers over time, the time to the
    /// first new worker's first task and from idle to scale-in.
    Elastic {
        #[arg(long, default_value_t = 200)]
        tasks: u64,
        /// Points per pi task.
        #[arg(long, default_value_t = 20_000_000)]
        points: u64,
        #[arg(long, default_value_t = 2)]
        max_blocks: u32,
        #[arg(long, default_value = "10s", value_parser = |s: &str| ferry_host::parse_duration(s).map_err(|e| e.to_string()))]
        max_idletime: Duration,
        /// The strategy's period.
        #[arg(long, default_value = "1s", value_parser = |s: &str| ferry_host::parse_duration(s).map_err(|e| e.to_string()))]
        period: Duration,
        /// `slurm` or `local` (default: Slurm where `sinfo` answers).
        #[arg(long)]
        provider: Option<String>,
        /// The Slurm partition (default: the cluster's own).
        #[arg(long)]
        partition: Option<String>,
        /// Where the PNG goes.
        #[arg(long, default_value = "elasticity.png")]
        plot: PathBuf,
    },
    /// Monte-Carlo pi in Wasm against the same Rust compiled natively.
    Pi {
        /// The `pi` component (default: build it from this checkout).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Points per estimate.
        #[arg(long, default_value_t = 1_000_000)]
        points: u64,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 21)]
        runs: u32,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    if let BenchCommand::Elastic {
        tasks,
        points,
        max_blocks,
        max_idletime,
        period,
        provider,
        partition,
        plot,
    } = cmd
    {
        elastic::run(elastic::Args {
            tasks: tasks.max(1),
            points,
            max_blocks: max_blocks.max(1),
            max_idletime,
            period,
            provider,
            partition,
            plot,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let axis = |security: bool| {
        if security {
            security::Axis::Security
        } else {
            security::Axis::Durability
        }
    };
    if let BenchCommand::Noop {
        component,
        tasks,
        runs,
        security,
        durability,
    } = cmd
    {
        let (tasks, runs) = (tasks.max(1), runs.max(1));
        if security || durability {
            let measure = security::Measure::Noop { tasks, runs };
            return security::compare(component, measure, axis(security));
        }
        return fabric_bench("noop", component, |c, f| {
            Box::pin(noop_throughput(c, f, tasks, runs))
        });
    }
    if let BenchCommand::Rtt {
        component,
        iterations,
        security,
        durability,
    } = cmd
    {
        let iterations = iterations.max(10);
        if security || durability {
            let measure = security::Measure::Rtt { iterations };
            return security::compare(component, measure, axis(security));
        }
        return fabric_bench("noop", component, move |c, f| {
            Box::pin(rtt(c, f, iterations))
        });
    }
    if let BenchCommand::Blob {
        component,
        mib,
        runs,
        dir,
    } = cmd
    {
        blob::run(
            component,
            mib.max(1),
            runs.max(1),
            dir,
            &mut Report::printing(),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if let BenchCommand::Dataflow {
        component,
        links,
        runs,
    } = cmd
    {
        return fabric_bench("dataflow-probe", component, move |c, f| {
            Box::pin(async move {
                let mut report = Report::printing();
                dataflow::run(c, "local", f, links.max(2), runs.max(1), &mut report).await
            })
        });
    }
    if let BenchCommand::Camera { component, seconds } = cmd {
        camera::run(component, seconds.max(0.1))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let BenchCommand::Service {
        component,
        finished,
        mib,
        runs,
        keep,
    } = cmd
    {
        service::run(component, finished, mib.max(1), runs.max(1), keep)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let BenchCommand::Queue { component, tasks } = cmd {
        return queue::run(component, tasks.max(1), &mut Report::printing());
    }
    if let BenchCommand::Kmeans { args, runs } = &cmd {
        kmeans::bench(args, (*runs).max(1), &mut Report::printing())?;
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    let host = Host::new(HostConfig::default())?;
    let mut report = Report::printing();
    match cmd {
        BenchCommand::Noop { .. }
        | BenchCommand::Elastic { .. }
        | BenchCommand::Rtt { .. }
        | BenchCommand::Kmeans { .. }
        | BenchCommand::Camera { .. }
        | BenchCommand::Dataflow { .. }
        | BenchCommand::Service { .. }
        | BenchCommand::Queue { .. }
        | BenchCommand::Blob { .. } => {
            unreachable!("handled above")
        }
        BenchCommand::Instantiate {
            component,
            batch,
            batches,
        } => runtime.block_on(instantiate(
            &host,
            component,
            batch.max(1),
            batches.max(1),
            &mut report,
        )),
        BenchCommand::Pi {
            component,
            points,
            runs,
        } => runtime.block_on(pi(&host, component, points, runs.max(1), &mut report)),
    }
}

/// This machine's fsync floor in `dir`, the bound on a durable round trip:
/// the median of `n` 4 KiB writes, each made durable with `fdatasync`, as
/// a store's commit makes them.
pub(crate) fn fsync_floor(dir: &std::path::Path, n: usize) -> anyhow::Result<Duration> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join(format!("ferry-fsync-floor-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("measuring the fsync floor in {}", dir.display()))?;
    let block = [7u8; 4096];
    let mut times = Vec::with_capacity(n);
    let measured = (0..n.max(1)).try_for_each(|i| {
        file.seek(SeekFrom::Start((i as u64 % 16) * 4096))?;
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(start.elapsed());
        std::io::Result::Ok(())
    });
    let _ = std::fs::remove_file(&path);
    measured.context("measuring the fsync floor")?;
    Ok(median(times))
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 10_000_000.0 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

pub(crate) async fn instantiate(
    host: &Host,
    component: Option<PathBuf>,
    batch: u32,
    batches: u32,
    report: &mut Report,
) -> anyhow::Result<ExitCode> {
    let path = ferry_local::component("noop", component)?;
    let f = host.load_file(&path)?;
    let export = f.export("noop")?;
    let limits = Limits::default();
    let options = CallOptions::default();
    for _ in 0..batch {
        host.call(&f, export, &[], &limits, &options).await?;
    }
    let mut per_call = Vec::with_capacity(batches as usize);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..batch {
            host.call(&f, export, &[], &limits, &options).await?;
        }
        per_call.push(start.elapsed() / batch);
    }
    report.check(
        "instantiate",
        format!("{} calls of `noop` returned", batch * (batches + 1)),
        true,
    );
    report.add(
        Figure::seconds(
            "instantiate",
            "instantiate + call + drop of `noop`",
            &per_call,
        )
        .target("≤ 5 µs", 5e-6, false),
    );
    if !report.tables {
        return Ok(ExitCode::SUCCESS);
    }
    let min = *per_call.iter().min().expect("at least one batch");
    let med = median(per_call);
    println!("## ferry bench instantiate");
    println!();
    println!(
        "instantiate + call + drop of `noop`, {batches} batches of {batch} calls, pooling allocator: {}",
        host.pooling()
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| median per call | {} |", fmt(med));
    println!("| best batch per call | {} |", fmt(min));
    println!("| calls/s at the median | {:.0} |", 1.0 / med.as_secs_f64());
    println!("| target | ≤ 5 µs |");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn pi(
    host: &Host,
    component: Option<PathBuf>,
    points: u64,
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<ExitCode> {
    let path = ferry_local::component("pi", component)?;
    let f = host.load_file(&path)?;
    let export = f.export("pi")?;
    let args = export.args_from_json_strs(&[points.to_string(), "42".to_owned()])?;
    let limits = Limits::default();
    let options = CallOptions::default();

    let mut wasm = Vec::new();
    let mut native = Vec::new();
    let mut answers = (0.0, 0.0);
    // Interleave the two so that machine noise hits both alike.
    for i in 0..=runs {
        let start = Instant::now();
        let out = host.call(&f, export, &args, &limits, &options).await?;
        let t_wasm = start.elapsed();
        let start = Instant::now();
        let v = native_pi::pi(std::hint::black_box(points), std::hint::black_box(42));
        let t_native = start.elapsed();
        if i > 0 {
            wasm.push(t_wasm);
            native.push(t_native);
        }
        answers = (
            match out.result {
                Some(ferry_host::Value::Float64(x)) => x,
                other => anyhow::bail!("pi returned {other:?}"),
            },
            v,
        );
    }
    anyhow::ensure!(
        answers.0 == answers.1,
        "Wasm and native disagree: {} vs {}",
        answers.0,
        answers.1
    );
    report.check(
        "pi",
        format!(
            "pi({points}) in Wasm equals the native result, {}",
            answers.0
        ),
        true,
    );
    let ratios: Vec<f64> = wasm
        .iter()
        .zip(&native)
        .map(|(w, n)| w.as_secs_f64() / n.as_secs_f64())
        .collect();
    report.add(Figure::seconds(
        "pi",
        format!("pi({points}), Wasm call"),
        &wasm,
    ));
    report.add(Figure::seconds(
        "pi",
        format!("pi({points}), native"),
        &native,
    ));
    report.add(
        Figure::new(
            "pi",
            "Wasm / native, run by run",
            report::Unit::Ratio,
            ratios,
        )
        .target("≤ 1.25", 1.25, false),
    );
    let spread = spread_calls(host, &f, export, &args, runs)?;
    report.add(Figure::seconds(
        "pi",
        format!(
            "100 × pi({points}) on {} threads of this host, no fabric",
            suite::workers()
        ),
        &spread,
    ));
    if !report.tables {
        return Ok(ExitCode::SUCCESS);
    }
    let (w, n) = (median(wasm), median(native));
    println!("## ferry bench pi");
    println!();
    println!(
        "pi({points}) seed 42 = {}, {runs} interleaved runs each; Wasm includes instantiation",
        answers.0
    );
    println!();
    println!("| run | median |");
    println!("|---|---|");
    println!("| Wasm (ferry-host) | {} |", fmt(w));
    println!("| native (same source) | {} |", fmt(n));
    println!(
        "| Wasm / native | {:.3} |",
        w.as_secs_f64() / n.as_secs_f64()
    );
    println!("| target | ≤ 1.25 |");
    Ok(ExitCode::SUCCESS)
}

/// 100 calls shared out over as many threads as the fabric's endpoint has
/// workers, straight on the host: what this machine gives the pi blocks'
/// ideal when its cores run at once (turbo, shared caches, a neighbour on
/// the VM's host), with no fabric in the way.
fn spread_calls(
    host: &Host,
    f: &ferry_host::Function,
    export: &ferry_host::Export,
    args: &[ferry_host::Value],
    runs: u32,
) -> anyhow::Result<Vec<Duration>> {
    let workers = suite::workers();
    let limits = Limits::default();
    let options = CallOptions::default();
    let mut totals = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let start = Instant::now();
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..workers)
                .map(|w| {
                    let (limits, options) = (&limits, &options);
                    scope.spawn(move || -> anyhow::Result<()> {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        for _ in (w..100).step_by(workers) {
                            rt.block_on(host.call(f, export, args, limits, options))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            threads.into_iter().try_for_each(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a pi thread panicked"))?
            })
        })?;
        totals.push(start.elapsed());
    }
    Ok(totals)
}

type BenchFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Starts a fabric (service + endpoint `local`) in this process on a fresh
/// data directory, registers `noop`, runs `body`, and tears it all down.
fn fabric_bench(
    guest: &str,
    component: Option<PathBuf>,
    body: impl for<'a> FnOnce(&'a ferry_client::Client, &'a str) -> BenchFuture<'a>,
) -> anyhow::Result<ExitCode> {
    let path = ferry_local::component(guest, component)?;
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let fabric = ferry_local::Fabric::start(&dir, "127.0.0.1:0".parse()?, None).await?;
        let client =
            ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls).await?;
        let f = client.register(&std::fs::read(&path)?).await?;
        body(&client, &f.id).await?;
        fabric.stop().await
    });
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn noop_throughput(
    client: &ferry_client::Client,
    f: &str,
    tasks: usize,
    runs: u32,
) -> anyhow::Result<()> {
    let rates = noop_rates(client, "local", f, tasks, runs).await?;
    println!("## ferry bench noop");
    println!();
    println!(
        "{runs} runs of {tasks} no-op tasks (batches of 1,000), service + endpoint + client in one process on loopback"
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| median tasks/s | {:.0} |", rates[rates.len() / 2]);
    println!("| best run tasks/s | {:.0} |", rates[rates.len() - 1]);
    println!("| target | ≥ 100,000 |");
    Ok(())
}

/// Completed tasks a second in each of `runs` runs (after one to warm up),
/// sorted.
async fn noop_rates(
    client: &ferry_client::Client,
    endpoint: &str,
    f: &str,
    tasks: usize,
    runs: u32,
) -> anyhow::Result<Vec<f64>> {
    let mut rates = Vec::new();
    for run in 0..=runs {
        let start = Instant::now();
        let futures = client
            .submit_batch::<(), ()>(endpoint, f, "noop", std::iter::repeat_n((), tasks))
            .await?;
        for fut in futures {
            fut.await?;
        }
        let secs = start.elapsed().as_secs_f64();
        if run > 0 {
            rates.push(tasks as f64 / secs);
        }
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates)
}

async fn rtt(client: &ferry_client::Client, f: &str, iterations: u32) -> anyhow::Result<()> {
    let times = rtt_times(client, "local", f, iterations).await?;
    let floor = fsync_floor(&std::env::temp_dir(), 200)?;
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!("## ferry bench rtt");
    println!();
    println!("{iterations} no-op tasks, each submitted and awaited before the next, on loopback");
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| p50 | {} |", fmt(at(0.5)));
    println!("| p99 | {} |", fmt(at(0.99)));
    println!(
        "| fsync floor (4 KiB write + fdatasync, median) | {} |",
        fmt(floor)
    );
    println!(
        "| target p50 (2 × floor + 0.1 ms) | ≤ {} |",
        fmt(floor * 2 + Duration::from_micros(100))
    );
    Ok(())
}

/// The round trips of `iterations` no-op tasks (after a tenth as many to
/// warm up), sorted.
async fn rtt_times(
    client: &ferry_client::Client,
    endpoint: &str,
    f: &str,
    iterations: u32,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(iterations as usize);
    for i in 0..iterations + iterations / 10 {
        let start = Instant::now();
        client
            .submit::<_, ()>(endpoint, f, "noop", &())
            .await?
            .await?;
        if i >= iterations / 10 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    Ok(times)
}
