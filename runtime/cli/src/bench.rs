//! `ferry bench`: medians over repeated runs, printed as tables.
//!
//! These are measurements, not tests; compare ratios taken in one run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_host::{CallOptions, Host, HostConfig, Limits};

/// The same source the `pi` component is built from, compiled natively here.
#[path = "../../../examples/pi/src/estimate.rs"]
mod native_pi;

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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    let host = Host::new(HostConfig::default())?;
    match cmd {
        BenchCommand::Instantiate {
            component,
            batch,
            batches,
        } => runtime.block_on(instantiate(&host, component, batch.max(1), batches.max(1))),
        BenchCommand::Pi {
            component,
            points,
            runs,
        } => runtime.block_on(pi(&host, component, points, runs.max(1))),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 10_000_000.0 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

async fn instantiate(
    host: &Host,
    component: Option<PathBuf>,
    batch: u32,
    batches: u32,
) -> anyhow::Result<ExitCode> {
    let path = crate::guests::component("noop", component)?;
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

async fn pi(
    host: &Host,
    component: Option<PathBuf>,
    points: u64,
    runs: u32,
) -> anyhow::Result<ExitCode> {
    let path = crate::guests::component("pi", component)?;
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
                Some(ferry_host::Val::Float64(x)) => x,
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
