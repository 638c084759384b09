//! `ferry bench noop|rtt --security` and `--durability`: what tokens and
//! TLS cost, and what each durability mode buys. The same build runs the
//! same measure in each setup in one process (authentication off, tokens,
//! tokens over TLS with a self-signed certificate; or tokens with `strict`,
//! `group` and `none` durability), and the table gives each against the
//! first.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry_service::{Durability, ServerTls, ServiceConfig};

/// What is measured in each setup.
#[derive(Clone, Copy)]
pub(crate) enum Measure {
    Noop { tasks: usize, runs: u32 },
    Rtt { iterations: u32 },
}

/// What the setups compared vary.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Axis {
    Security,
    Durability,
}

impl Axis {
    fn setups(self) -> Vec<Setup> {
        match self {
            Axis::Security => vec![Setup::Open, Setup::Tokens, Setup::TokensTls],
            Axis::Durability => Durability::ALL.into_iter().map(Setup::Durable).collect(),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Axis::Security => "--security",
            Axis::Durability => "--durability",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Open,
    Tokens,
    TokensTls,
    /// Tokens over plaintext, with this durability.
    Durable(Durability),
}

impl Setup {
    fn label(self) -> String {
        match self {
            Setup::Open => "auth off, plaintext".into(),
            Setup::Tokens => "tokens, plaintext".into(),
            Setup::TokensTls => "tokens, TLS".into(),
            Setup::Durable(d) => format!("durability {d}"),
        }
    }

    fn config(self, dir: &std::path::Path) -> anyhow::Result<ServiceConfig> {
        let mut config = ServiceConfig::new(dir);
        config.auth = self != Setup::Open;
        if let Setup::Durable(d) = self {
            config.durability = d;
        }
        if self == Setup::TokensTls {
            let made = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .context("making a self-signed certificate")?;
            config.tls = Some(ServerTls {
                cert_pem: made.cert.pem().into_bytes(),
                key_pem: made.signing_key.serialize_pem().into_bytes(),
                client_ca_pem: None,
            });
        }
        Ok(config)
    }
}

/// One setup's figures: tasks a second (noop), or p50 and p99 (rtt).
enum Figures {
    Rate(f64),
    Latency(std::time::Duration, std::time::Duration),
}

pub(crate) fn compare(
    component: Option<PathBuf>,
    measure: Measure,
    axis: Axis,
) -> anyhow::Result<ExitCode> {
    let path = ferry_local::component("noop", component)?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut rows = Vec::new();
    for (i, setup) in axis.setups().into_iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("ferry-bench-security-{}-{i}", std::process::id()));
        let figures = runtime.block_on(async {
            let fabric = ferry_local::Fabric::start_with(
                setup.config(&dir)?,
                "127.0.0.1:0".parse()?,
                None,
                None,
            )
            .await?;
            let client =
                ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls).await?;
            let f = client.register(&bytes).await?;
            let figures = match measure {
                Measure::Noop { tasks, runs } => {
                    let rates = crate::noop_rates(&client, "local", &f.id, tasks, runs).await?;
                    Figures::Rate(rates[rates.len() / 2])
                }
                Measure::Rtt { iterations } => {
                    let times = crate::rtt_times(&client, "local", &f.id, iterations).await?;
                    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
                    Figures::Latency(at(0.5), at(0.99))
                }
            };
            fabric.stop().await?;
            anyhow::Ok(figures)
        });
        let _ = std::fs::remove_dir_all(&dir);
        rows.push((setup, figures?));
    }
    print(measure, axis, &rows);
    Ok(ExitCode::SUCCESS)
}

fn print(measure: Measure, axis: Axis, rows: &[(Setup, Figures)]) {
    let first = rows[0].0.label();
    match measure {
        Measure::Noop { tasks, runs } => {
            println!("## ferry bench noop {}", axis.flag());
            println!();
            println!(
                "{runs} runs of {tasks} no-op tasks in each setup, one process on loopback; medians"
            );
            println!();
            println!("| setup | tasks/s | against {first} |");
            println!("|---|---|---|");
            let base = match rows[0].1 {
                Figures::Rate(r) => r,
                Figures::Latency(..) => unreachable!("noop measures rates"),
            };
            for (setup, f) in rows {
                if let Figures::Rate(r) = f {
                    println!("| {} | {r:.0} | {:.3} |", setup.label(), r / base);
                }
            }
        }
        Measure::Rtt { iterations } => {
            println!("## ferry bench rtt {}", axis.flag());
            println!();
            println!("{iterations} no-op round trips in each setup, one process on loopback");
            if let Ok(floor) = crate::fsync_floor(&std::env::temp_dir(), 200) {
                println!(
                    "; this machine's fsync floor (4 KiB write + fdatasync, median) is {}",
                    crate::fmt(floor)
                );
            }
            println!();
            println!("| setup | p50 | p99 | p50 against {first} |");
            println!("|---|---|---|---|");
            let base = match rows[0].1 {
                Figures::Latency(p50, _) => p50,
                Figures::Rate(_) => unreachable!("rtt measures latencies"),
            };
            for (setup, f) in rows {
                if let Figures::Latency(p50, p99) = f {
                    println!(
                        "| {} | {} | {} | {:.3} |",
                        setup.label(),
                        crate::fmt(*p50),
                        crate::fmt(*p99),
                        p50.as_secs_f64() / base.as_secs_f64()
                    );
                }
            }
        }
    }
}
