//! `ferry bench dataflow`: what a dependency edge costs when the service
//! resolves the graph, against the client doing the same chain itself; and
//! graphs that fan in and fan out.

use std::time::Instant;

use ferry_client::{Client, Graph};

use crate::median;
use crate::report::{Figure, Report, Unit};

pub async fn run(
    client: &Client,
    endpoint: &str,
    f: &str,
    links: usize,
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut chain = Vec::new();
    let mut by_client = Vec::new();
    let mut fan_in = Vec::new();
    let mut fan_out = Vec::new();
    let client_links = (links / 10).max(10);
    for run in 0..=runs {
        // A chain resolved in the service: one request, then one result.
        let start = Instant::now();
        let mut g = Graph::new();
        let mut last = g.add(endpoint, f, "add", &(0i64, 1i64))?;
        for _ in 1..links {
            last = g.add(endpoint, f, "add", &(&last, 1i64))?;
        }
        let ids = client.submit_graph(g).await?;
        let end: i64 = client.result(ids.last().expect("a link")).await?;
        anyhow::ensure!(end == links as i64, "the chain summed to {end}");
        let t_chain = start.elapsed();

        // The same chain driven by the client: await each result, pass it on.
        let start = Instant::now();
        let mut v = 0i64;
        for _ in 0..client_links {
            v = client
                .submit::<_, i64>(endpoint, f, "add", &(v, 1i64))
                .await?
                .await?;
        }
        let t_client = start.elapsed();

        // Fan-in: `links` leaves into one sum, submitted as one graph.
        let start = Instant::now();
        let mut g = Graph::new();
        let leaves: Vec<_> = (0..links as i64)
            .map(|i| g.add(endpoint, f, "add", &(i, 0i64)))
            .collect::<Result<_, _>>()?;
        g.add(endpoint, f, "sum", &(leaves,))?;
        let ids = client.submit_graph(g).await?;
        let total: i64 = client.result(ids.last().expect("the sum")).await?;
        let n = links as i64;
        anyhow::ensure!(total == n * (n - 1) / 2, "the fan-in summed to {total}");
        let t_fan = start.elapsed();

        // Fan-out: one producer feeds `links` consumers, which are summed.
        let start = Instant::now();
        let mut g = Graph::new();
        let root = g.add(endpoint, f, "add", &(1i64, 0i64))?;
        let branches: Vec<_> = (0..links as i64)
            .map(|i| g.add(endpoint, f, "add", &(&root, i)))
            .collect::<Result<_, _>>()?;
        g.add(endpoint, f, "sum", &(branches,))?;
        let ids = client.submit_graph(g).await?;
        let total: i64 = client.result(ids.last().expect("the sum")).await?;
        anyhow::ensure!(
            total == n + n * (n - 1) / 2,
            "the fan-out summed to {total}"
        );
        let t_out = start.elapsed();
        if run > 0 {
            fan_out.push(t_out);
            chain.push(t_chain / links as u32);
            by_client.push(t_client / client_links as u32);
            fan_in.push(t_fan);
        }
    }
    report.check(
        "dataflow",
        format!("{runs} chains of {links}, fan-ins and fan-outs of {links} summed right"),
        true,
    );
    let secs = |v: &[std::time::Duration]| v.iter().map(|d| d.as_secs_f64()).collect::<Vec<_>>();
    let rate = |v: &[std::time::Duration], n: usize| {
        v.iter()
            .map(|d| n as f64 / d.as_secs_f64())
            .collect::<Vec<_>>()
    };
    let per_link = format!("chain of {links}, resolved in the service: per link");
    report.add(Figure::new(
        "dataflow",
        per_link,
        Unit::Seconds,
        secs(&chain),
    ));
    let by_hand = format!("chain driven by the client ({client_links} links): per link");
    report.add(Figure::new(
        "dataflow",
        by_hand,
        Unit::Seconds,
        secs(&by_client),
    ));
    let fan_in_case = format!("fan-in of {links} into one sum");
    report.add(Figure::new(
        "dataflow",
        fan_in_case,
        Unit::TasksPerSec,
        rate(&fan_in, links + 1),
    ));
    let fan_out_case = format!("fan-out of one into {links}, then a sum");
    report.add(Figure::new(
        "dataflow",
        fan_out_case,
        Unit::TasksPerSec,
        rate(&fan_out, links + 2),
    ));
    if !report.tables {
        return Ok(());
    }
    let (chain, by_client) = (median(chain), median(by_client));
    let (fan_in, fan_out) = (median(fan_in), median(fan_out));
    println!("## ferry bench dataflow");
    println!();
    println!(
        "`dataflow-probe` `add` tasks through a service and one endpoint in this process on loopback; medians of {runs} runs"
    );
    println!();
    println!("| measure | median |");
    println!("|---|---|");
    println!(
        "| chain of {links} tasks, each taking the last one's result, resolved in the service: per link | {:.3} ms |",
        chain.as_secs_f64() * 1e3
    );
    println!(
        "| the same chain driven by the client (submit, await, pass on; {client_links} links): per link | {:.3} ms |",
        by_client.as_secs_f64() * 1e3
    );
    println!(
        "| fan-in: {links} leaves into one `sum`, one graph: whole | {:.3} s ({:.0} tasks/s) |",
        fan_in.as_secs_f64(),
        (links + 1) as f64 / fan_in.as_secs_f64()
    );
    println!(
        "| fan-out: one task into {links} consumers, then one `sum`: whole | {:.3} s ({:.0} tasks/s) |",
        fan_out.as_secs_f64(),
        (links + 2) as f64 / fan_out.as_secs_f64()
    );
    println!();
    println!(
        "a service-side edge costs {:.2}× a client round trip",
        chain.as_secs_f64() / by_client.as_secs_f64()
    );
    Ok(())
}
