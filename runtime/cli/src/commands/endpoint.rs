//! `ferry endpoint start`.

use crate::fabric::{DEFAULT_SERVICE, runtime, shutdown_signal};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum EndpointCommand {
    /// Dial the service and run its tasks until stopped.
    Start(ferry_endpoint::StartArgs),
}

pub fn endpoint(cmd: EndpointCommand) -> anyhow::Result<ExitCode> {
    let EndpointCommand::Start(args) = cmd;
    let mut c = args.into_config(DEFAULT_SERVICE)?;
    if c.cache_dir.is_none() {
        c.cache_dir = crate::local::default_cache_dir();
    }
    eprintln!(
        "ferry endpoint `{}` dialling {} ({} slots)",
        c.name, c.service, c.concurrency
    );
    runtime()?.block_on(ferry_endpoint::run(c, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}
