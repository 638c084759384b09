//! The seed's pipeline: points generated on one endpoint, clustered on
//! another, only the summary returned.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::fabric::{ServiceArg, runtime};
use ferry_client::Client;

pub fn demo_pipeline(
    service: &ServiceArg,
    generate_on: &str,
    cluster_on: &str,
    points: u32,
    k: u32,
    seed: u64,
) -> anyhow::Result<ExitCode> {
    let pipeline = ferry_local::component("pipeline", None)?;
    let kmeans = ferry_local::component("kmeans", None)?;
    runtime()?.block_on(async {
        let client = service.connect().await?;
        pipeline_experiment(
            &client,
            (generate_on, cluster_on),
            (&pipeline, &kmeans),
            points,
            k,
            seed,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The summary `pipeline` returns.
#[derive(Debug, serde::Deserialize)]
pub struct Summary {
    pub points: u32,
    pub k: u32,
    pub sizes: Vec<u32>,
    pub centers: Vec<f32>,
    pub smallest: u32,
    pub largest: u32,
    pub iterations: u32,
    pub device: String,
}

/// generate → kmeans → summarise, submitted as one graph.
pub async fn pipeline_experiment(
    client: &Client,
    (generate_on, cluster_on): (&str, &str),
    (pipeline, kmeans): (&Path, &Path),
    points: u32,
    k: u32,
    seed: u64,
) -> anyhow::Result<Summary> {
    let p = client.register(&std::fs::read(pipeline)?).await?;
    let km = client.register(&std::fs::read(kmeans)?).await?;
    let started = Instant::now();
    let mut g = ferry_client::Graph::new();
    let pts = g.add(
        generate_on,
        &p.id,
        "generate",
        &(points, 7u32, 1.6f32, seed),
    )?;
    let clustering = g.add(
        cluster_on,
        &km.id,
        "cluster",
        &(&pts, k, 60u32, false, seed),
    )?;
    g.add(generate_on, &p.id, "summarise", &(&clustering,))?;
    let ids = client.submit_graph(g).await?;
    let summary: Summary = client.result(&ids[2]).await?;
    println!(
        "pipeline: generate {points} points on `{generate_on}` → kmeans (k = {k}) on `{cluster_on}` → summarise on `{generate_on}`, submitted as one graph; the points and codes went endpoint → service → endpoint, only the summary came back"
    );
    println!(
        "  {} points in {} clusters of {}..{} points after {} iterations on {}, {:.2} s end to end",
        summary.points,
        summary.k,
        summary.smallest,
        summary.largest,
        summary.iterations,
        summary.device,
        started.elapsed().as_secs_f64()
    );
    for (i, c) in summary.centers.chunks(2).enumerate() {
        println!(
            "  center {i}: ({:7.3}, {:7.3})  {} points",
            c[0], c[1], summary.sizes[i]
        );
    }
    println!("  `ferry graph {}` shows the graph", ids[2]);
    Ok(summary)
}
