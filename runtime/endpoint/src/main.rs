//! `ferry-endpoint`: the endpoint alone, for edge boards. The same agent and
//! flags as `ferry endpoint start`, without the service, its store or the
//! client.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "ferry-endpoint", version)]
struct Args {
    #[command(flatten)]
    start: ferry_endpoint::StartArgs,
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread starts.
    unsafe { ferry_host::prepare_environment() };
    let _log = ferry_endpoint::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-endpoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let c = args.start.into_config("http://127.0.0.1:7171")?;
    tracing::info!(
        endpoint = %c.name,
        arch = std::env::consts::ARCH,
        "dialling {} ({} slots)",
        c.service,
        c.concurrency
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(ferry_endpoint::run(c, ferry_endpoint::stop_signal()))
}
