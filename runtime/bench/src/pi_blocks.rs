//! The seed's pi experiment through the fabric: 100 × pi(points) submitted in
//! blocks of N concurrent tasks, each block awaited before the next; the
//! total seconds for each block size, every result checked against the same
//! code run natively.

use std::time::Instant;

use ferry_client::Client;

use crate::native_pi;
use crate::report::{Figure, Report, Unit};

/// The seed's block sizes.
pub(crate) const BLOCKS: [usize; 7] = [1, 2, 4, 5, 10, 20, 100];
const TASKS: usize = 100;

/// Total seconds of each run for each block size, in [`BLOCKS`] order.
pub(crate) async fn run(
    client: &Client,
    endpoint: &str,
    f: &str,
    points: u64,
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<Vec<(usize, Vec<f64>)>> {
    let expected: Vec<f64> = (0..TASKS as u64)
        .map(|seed| native_pi::pi(points, seed))
        .collect();
    let mut totals = Vec::new();
    let mut wrong = 0usize;
    for block in BLOCKS {
        let mut secs = Vec::with_capacity(runs as usize);
        for _ in 0..runs {
            let start = Instant::now();
            for b in 0..TASKS / block {
                let seeds = (0..block).map(|i| (points, (b * block + i) as u64));
                let futures = client
                    .submit_batch::<_, f64>(endpoint, f, "pi", seeds)
                    .await?;
                for (i, fut) in futures.into_iter().enumerate() {
                    if fut.await? != expected[b * block + i] {
                        wrong += 1;
                    }
                }
            }
            secs.push(start.elapsed().as_secs_f64());
        }
        totals.push((block, secs));
    }
    report.check(
        "pi blocks",
        format!(
            "{wrong} of {} pi({points}) results differ from the native ones",
            TASKS * BLOCKS.len() * runs as usize
        ),
        wrong == 0,
    );
    // The target: block 100 within 10% of 100 single calls spread over the
    // workers, a single call timed in this process's host.
    let ideal = report
        .median_of("pi", "pi(")
        .map(|single| TASKS as f64 * single / crate::suite::workers() as f64);
    // The same 100 calls on as many threads straight on the host: the
    // part of the gap that the machine, not the fabric, accounts for.
    let on_threads = report.median_of("pi", "100 × pi(");
    for (block, secs) in &totals {
        let mut fig = Figure::new(
            "pi blocks",
            format!("100 × pi({points}), blocks of {block}: total"),
            Unit::Seconds,
            secs.clone(),
        );
        if let (100, Some(ideal)) = (*block, ideal) {
            fig = fig.target(
                format!(
                    "≤ 1.1 × {}",
                    crate::fmt(std::time::Duration::from_secs_f64(ideal))
                ),
                ideal * 1.1,
                false,
            );
        }
        report.add(fig);
        if let (100, Some(threads)) = (*block, on_threads) {
            report.add(Figure::new(
                "pi blocks",
                "blocks of 100 ÷ the same calls on the host's threads, run by run",
                Unit::Ratio,
                secs.iter().map(|s| s / threads).collect(),
            ));
        }
    }
    Ok(totals)
}
