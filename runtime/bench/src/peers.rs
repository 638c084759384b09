//! `ferry bench --peers`: Parsl, Dask and Ray on ferry's no-op, round-trip
//! and pi workloads, in the same sitting, turn about with ferry's own runs:
//! ferry, then a peer, then ferry again, and so on. Each ratio pairs a peer
//! with the ferry turn just before it.
//!
//! The peers run from `bench/peers/run.sh`, which installs them from PyPI
//! into a virtualenv; their pi is the seed's, in pure Python.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use ferry_service::{Durability, ServiceConfig};
use serde::Deserialize;

use crate::pi_blocks::BLOCKS;
use crate::report::{Figure, Report, Unit};
use crate::suite::Components;

const PEERS: [&str; 3] = ["parsl", "dask", "ray"];

/// One system's medians in the sitting, for the plots.
pub(crate) struct Series {
    pub name: String,
    pub tasks_per_sec: f64,
    pub rtt_p50: f64,
    /// Total seconds for each block size of the pi experiment.
    pub pi: Vec<(usize, f64)>,
}

/// What the sitting measured: ferry's modes, then each peer.
pub(crate) struct Sitting {
    pub systems: Vec<Series>,
    pub pi_points: u64,
    pub workers: usize,
}

/// The workloads' sizes, the same for ferry and the peers.
struct Sizes {
    tasks: usize,
    runs: u32,
    iterations: u32,
    pi_points: u64,
}

/// A peer's line from `peers.py`.
#[derive(Deserialize)]
struct PeerRun {
    peer: String,
    version: Option<String>,
    error: Option<String>,
    noop: Option<PeerNoop>,
    rtt: Option<PeerRtt>,
    pi: Option<PeerPi>,
}

#[derive(Deserialize)]
struct PeerNoop {
    rates: Vec<f64>,
}

#[derive(Deserialize)]
struct PeerRtt {
    p50_s: f64,
}

#[derive(Deserialize)]
struct PeerPi {
    blocks: std::collections::BTreeMap<String, Vec<f64>>,
}

fn script() -> PathBuf {
    std::env::var_os("FERRY_PEERS_SCRIPT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/run.sh"),
        PathBuf::from,
    )
}

pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    components: &Components,
    quick: bool,
    scratch: &Path,
    report: &mut Report,
) -> anyhow::Result<Sitting> {
    let sizes = if quick {
        Sizes {
            tasks: 200,
            runs: 1,
            iterations: 20,
            pi_points: 10_000,
        }
    } else {
        Sizes {
            tasks: 5000,
            runs: 3,
            iterations: 500,
            pi_points: 1_000_000,
        }
    };
    let mut ferry: Vec<(Series, Series)> = Vec::new();
    let mut peers = Vec::new();
    for (turn, peer) in PEERS.into_iter().enumerate() {
        let dir = scratch.join(format!("peers-ferry-{turn}"));
        let strict = runtime.block_on(ferry_turn(
            Durability::Strict,
            &dir.join("strict"),
            components,
            &sizes,
            report,
        ))?;
        let none = runtime.block_on(ferry_turn(
            Durability::None,
            &dir.join("none"),
            components,
            &sizes,
            report,
        ))?;
        let _ = std::fs::remove_dir_all(&dir);
        let got = peer_turn(peer, &sizes, scratch)?;
        if let Some(e) = &got.error {
            report.check("peers", format!("{peer} ran the workloads: {e}"), false);
            continue;
        }
        let version = got.version.clone().unwrap_or_default();
        let name = format!("{} {version}", got.peer);
        let rates = got
            .noop
            .as_ref()
            .map(|n| n.rates.clone())
            .unwrap_or_default();
        let p50 = got.rtt.as_ref().map_or(f64::NAN, |r| r.p50_s);
        let pi: Vec<(usize, f64)> = BLOCKS
            .iter()
            .filter_map(|b| {
                let v = got.pi.as_ref()?.blocks.get(&b.to_string())?;
                Some((*b, crate::report::quantile(v, 0.5)))
            })
            .collect();
        report.add(Figure::new(
            "peers",
            format!("{name}: noop"),
            Unit::TasksPerSec,
            rates.clone(),
        ));
        report.add(Figure::new(
            "peers",
            format!("{name}: rtt p50"),
            Unit::Seconds,
            vec![p50],
        ));
        let mut peer_rates = rates;
        peer_rates.sort_by(f64::total_cmp);
        let peer_rate = if peer_rates.is_empty() {
            f64::NAN
        } else {
            crate::report::quantile(&peer_rates, 0.5)
        };
        for (ferry_series, mode) in [(&strict, "strict"), (&none, "none")] {
            report.add(Figure::new(
                "peers",
                format!("ferry {mode} ÷ {}: noop tasks/s", got.peer),
                Unit::Ratio,
                vec![ferry_series.tasks_per_sec / peer_rate],
            ));
            report.add(Figure::new(
                "peers",
                format!("{} ÷ ferry {mode}: rtt p50", got.peer),
                Unit::Ratio,
                vec![p50 / ferry_series.rtt_p50],
            ));
        }
        if let (Some(f), Some(p)) = (strict.pi.last(), pi.last()) {
            let mut fig = Figure::new(
                "peers",
                format!("ferry ÷ {}: pi, blocks of {}, total seconds", got.peer, f.0),
                Unit::Ratio,
                vec![f.1 / p.1],
            );
            if got.peer == "parsl" {
                fig = fig.target("≤ 1/20", 0.05, false);
            }
            report.add(fig);
        }
        peers.push(Series {
            name,
            tasks_per_sec: peer_rate,
            rtt_p50: p50,
            pi,
        });
        ferry.push((strict, none));
    }
    // ferry's figure in each mode: the median over its turns.
    let mut systems = Vec::new();
    for (i, mode) in ["strict", "none"].into_iter().enumerate() {
        let turns: Vec<&Series> = ferry
            .iter()
            .map(|t| if i == 0 { &t.0 } else { &t.1 })
            .collect();
        if turns.is_empty() {
            break;
        }
        let med = |f: &dyn Fn(&Series) -> f64| {
            let mut v: Vec<f64> = turns.iter().map(|s| f(s)).collect();
            v.sort_by(f64::total_cmp);
            crate::report::quantile(&v, 0.5)
        };
        let pi = turns[0]
            .pi
            .iter()
            .enumerate()
            .map(|(j, (b, _))| (*b, med(&|s: &Series| s.pi.get(j).map_or(f64::NAN, |p| p.1))))
            .collect();
        systems.push(Series {
            name: format!("ferry {mode}"),
            tasks_per_sec: med(&|s: &Series| s.tasks_per_sec),
            rtt_p50: med(&|s: &Series| s.rtt_p50),
            pi,
        });
    }
    systems.extend(peers);
    Ok(Sitting {
        systems,
        pi_points: sizes.pi_points,
        workers: crate::suite::workers(),
    })
}

/// ferry's turn: the peers' workloads at their sizes, in `d` mode, on a
/// fabric of its own; pi only under `strict`.
async fn ferry_turn(
    d: Durability,
    dir: &Path,
    components: &Components,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<Series> {
    let mut config = ServiceConfig::new(dir);
    config.durability = d;
    let fabric =
        ferry_local::Fabric::start_with(config, "127.0.0.1:0".parse()?, None, None).await?;
    let client = ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls).await?;
    let noop = client.register(&components.noop).await?.id;
    let rates = crate::noop_rates(&client, "local", &noop, sizes.tasks, sizes.runs).await?;
    let times = crate::rtt_times(&client, "local", &noop, sizes.iterations).await?;
    let mut pi = Vec::new();
    if d == Durability::Strict {
        let f = client.register(&components.pi).await?.id;
        // The turn's figures stay out of the table; its checks do not.
        let mut turn = Report::default();
        let totals =
            crate::pi_blocks::run(&client, "local", &f, sizes.pi_points, 1, &mut turn).await?;
        report.checks.extend(turn.checks);
        pi = totals.into_iter().map(|(b, s)| (b, s[0])).collect();
    }
    drop(client);
    fabric.stop().await?;
    Ok(Series {
        name: format!("ferry {d}"),
        tasks_per_sec: crate::report::quantile(&rates, 0.5),
        rtt_p50: times[times.len() / 2].as_secs_f64(),
        pi,
    })
}

/// One peer's turn: `peers.py` for it alone.
fn peer_turn(peer: &str, sizes: &Sizes, scratch: &Path) -> anyhow::Result<PeerRun> {
    let script = script();
    eprintln!("ferry bench --peers: {peer} ({})", script.display());
    std::fs::create_dir_all(scratch)?;
    let out = Command::new("bash")
        .arg(&script)
        .args(["--peers", peer])
        .args(["--tasks", &sizes.tasks.to_string()])
        .args(["--runs", &sizes.runs.to_string()])
        .args(["--iterations", &sizes.iterations.to_string()])
        .args(["--pi-points", &sizes.pi_points.to_string()])
        .args(["--workers", &crate::suite::workers().to_string()])
        .arg("--scratch")
        .arg(scratch)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| {
            format!(
                "{} printed no result for {peer} (exit {})",
                script.display(),
                out.status
            )
        })?;
    serde_json::from_str(line).with_context(|| format!("reading {peer}'s result: {line}"))
}
