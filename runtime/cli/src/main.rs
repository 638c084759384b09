//! `ferry`: the command-line face of the ferry function fabric.

mod bench;
mod demo;
mod guests;
mod local;
mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "A function fabric for science on WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a component's blake3 id and its exports in WIT syntax.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Run one export of a component locally and print the result as JSON.
    Run(local::RunArgs),
    /// Create a new function crate that builds out of the box.
    New(scaffold::NewArgs),
    /// Run a demonstration.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// Measure ferry (medians over repeated runs; not a test).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { file } => local::inspect(&file),
        Command::Run(args) => local::run(args),
        Command::New(args) => scaffold::new(args),
        Command::Demo(cmd) => demo::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
