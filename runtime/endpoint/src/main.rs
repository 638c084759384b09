//! `ferry-endpoint`: the endpoint alone, for edge boards. The same agent as
//! `ferry endpoint start`, without the service, its store or the client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferry_endpoint::{CameraConfig, EndpointConfig};

/// Dial a ferry service and run its tasks until stopped.
#[derive(Parser)]
#[command(name = "ferry-endpoint", version)]
struct Args {
    /// A TOML config: name, service, concurrency, cache_dir, gpu, cameras,
    /// mounts, [limits].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Service URL (overrides the config).
    #[arg(long, env = "FERRY_SERVICE")]
    service: Option<String>,
    /// Endpoint name (overrides the config).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    concurrency: Option<u32>,
    /// Compiled components and fetched blobs.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The GPU lent to tasks: `auto`, `none`, or part of an adapter's name.
    #[arg(long)]
    gpu: Option<String>,
    /// A camera granted to every function: `[NAME=]v4l2:/dev/video0[:WxH]`,
    /// `[NAME=]test-pattern[:WxH][@FPS]` or `[NAME=]replay:DIR[@FPS]`.
    #[arg(long = "camera", value_name = "SPEC")]
    cameras: Vec<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-endpoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut c = match &args.config {
        Some(path) => EndpointConfig::from_file(path)?,
        None => EndpointConfig::new(
            args.name
                .clone()
                .ok_or_else(|| anyhow::anyhow!("an endpoint needs --name (or a --config)"))?,
            "http://127.0.0.1:7171",
        ),
    };
    if let Some(s) = args.service {
        c.service = s;
    }
    if let Some(n) = args.name {
        c.name = n;
    }
    if let Some(n) = args.concurrency {
        c.concurrency = n.max(1);
    }
    if let Some(d) = args.cache_dir {
        c.cache_dir = Some(d);
    }
    if let Some(g) = args.gpu {
        c.gpu = g.parse()?;
    }
    for spec in &args.cameras {
        c.cameras.push(CameraConfig::from_spec(spec)?);
    }
    eprintln!(
        "ferry-endpoint `{}` ({}) dialling {} ({} slots)",
        c.name,
        std::env::consts::ARCH,
        c.service,
        c.concurrency
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(ferry_endpoint::run(c, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}
