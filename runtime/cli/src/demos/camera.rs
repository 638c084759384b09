//! A snapshot from an endpoint's camera.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::fabric::{ServiceArg, runtime};
use anyhow::Context;
use ferry_client::{Client, SubmitOptions};

pub fn demo_camera(
    service: &ServiceArg,
    endpoint: &str,
    device: Option<String>,
    size: (u32, u32),
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let component = ferry_local::component("camera-snapshot", None)?;
    runtime()?.block_on(async {
        let client = service.connect().await?;
        camera_snapshot(&client, endpoint, &component, device, size, out).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Captures one frame through `camera-snapshot` and writes the PNG.
pub async fn camera_snapshot(
    client: &Client,
    endpoint: &str,
    component: &Path,
    device: Option<String>,
    (width, height): (u32, u32),
    out: &Path,
) -> anyhow::Result<()> {
    let f = client.register(&std::fs::read(component)?).await?;
    let started = Instant::now();
    let png: ferry_client::WitResult<Vec<u8>, String> = client
        .submit_with(
            endpoint,
            &f.id,
            "snapshot",
            &(device.as_deref(), width, height),
            &SubmitOptions {
                requires: vec![device.as_ref().map_or(
                    ferry_client::Requirement::any_camera(),
                    ferry_client::Requirement::camera,
                )],
                ..SubmitOptions::default()
            },
        )
        .await?
        .await?;
    let png = Result::from(png).map_err(anyhow::Error::msg)?;
    std::fs::write(out, &png).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "camera snapshot on `{endpoint}`: {width}x{height} PNG of {} bytes, encoded in the function, in {:.1} ms end to end; wrote {}",
        png.len(),
        started.elapsed().as_secs_f64() * 1e3,
        out.display()
    );
    Ok(())
}
