//! The seed's k-means on an endpoint's CPU and GPU, and its plot.

use crate::fabric::{ServiceArg, connect, runtime};
use std::path::PathBuf;
use std::process::ExitCode;

/// The seed's k-means on the endpoint's CPU and GPU, and its plot.
pub fn demo_kmeans(
    service: &ServiceArg,
    endpoint: String,
    args: crate::kmeans::KmeansArgs,
    out: PathBuf,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        crate::kmeans::demo(&client, &endpoint, &args, &out).await?;
        Ok(ExitCode::SUCCESS)
    })
}
