//! Monte-Carlo pi on an endpoint, checked against the same code natively.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::fabric::{ServiceArg, runtime};
use ferry_client::Client;

/// The seed experiment: 100 × pi(10^6) in blocks of N concurrent tasks.
pub fn demo_pi(
    service: &ServiceArg,
    endpoint: String,
    component: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let path = ferry_local::component("pi", component)?;
    runtime()?.block_on(async {
        let client = service.connect().await?;
        pi_experiment(&client, &endpoint, &path).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) async fn pi_experiment(
    client: &Client,
    endpoint: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let f = client.register_file(path).await?;
    println!("\n100 × pi(10^6) through the fabric; pi is {}\n", f.id);
    // Drawn only when stderr is a terminal.
    let bar = indicatif::ProgressBar::new(700);
    println!("| block size | blocks | total seconds | mean pi |");
    println!("|---|---|---|---|");
    for block in [1usize, 2, 4, 5, 10, 20, 100] {
        let start = Instant::now();
        let mut sum = 0.0;
        for b in 0..100 / block {
            let seeds = (0..block).map(|i| (1_000_000u64, (b * block + i) as u64));
            let futures = client
                .submit_batch::<_, f64>(endpoint, &f.id, "pi", seeds)
                .await?;
            for fut in futures {
                sum += fut.await?;
                bar.inc(1);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        bar.suspend(|| {
            println!(
                "| {block} | {} | {secs:.3} | {:.5} |",
                100 / block,
                sum / 100.0
            )
        });
    }
    bar.finish_and_clear();
    Ok(())
}
