//! The `kmeans` example's shapes, shared by its demo and its benchmark.

use std::path::PathBuf;

use serde::Deserialize;

/// What the `cluster` export returns.
#[derive(Debug, Clone, Deserialize)]
pub struct Clustering {
    pub centers: Vec<f32>,
    pub codes: Vec<u32>,
    pub iterations: u32,
    pub seconds: f64,
    pub device: String,
}

/// Settings of one experiment.
#[derive(clap::Args, Clone)]
pub struct KmeansArgs {
    /// Points to cluster.
    #[arg(long, default_value_t = 400_000)]
    pub points: usize,
    /// Centers.
    #[arg(long, default_value_t = 7)]
    pub k: u32,
    /// Most assignment passes.
    #[arg(long, default_value_t = 60)]
    pub iterations: u32,
    /// Seed of the data and of the initial centers.
    #[arg(long, default_value_t = 2016)]
    pub seed: u64,
    /// The `kmeans` component (default: build it from this checkout).
    #[arg(long)]
    pub component: Option<PathBuf>,
}
