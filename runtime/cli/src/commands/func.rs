//! `ferry fn` and `ferry cache`: functions by blake3 id, and the memo.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::fabric::{ServiceArg, runtime};
use anyhow::Context;
use ferry_client::Client;

#[derive(clap::Subcommand)]
pub enum FnCommand {
    /// Register a component; prints its function id (blake3 hex).
    Register { file: PathBuf },
    /// List the functions you registered (`--all`: everyone's; admin only).
    Ls {
        #[arg(long)]
        all: bool,
    },
    /// Show a function's exports.
    Show { id: String },
    /// Memoize every call of a function from now on (`--off` stops).
    Memoize {
        id: String,
        #[arg(long)]
        off: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Forget every memoized result.
    Clear,
}

pub fn cache(service: &ServiceArg, cmd: CacheCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        match cmd {
            CacheCommand::Clear => {
                let n = client.clear_cache().await?;
                println!("forgot {n} memoized results");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A function id, or a file to register (printing nothing extra).
pub(crate) async fn function_id(client: &Client, function: &str) -> anyhow::Result<String> {
    let path = Path::new(function);
    if function.ends_with(".wasm") || path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read component `{function}`"))?;
        return Ok(client.register(&bytes).await?.id);
    }
    Ok(function.to_owned())
}

pub fn func(service: &ServiceArg, cmd: FnCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        match cmd {
            FnCommand::Register { file } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read component `{}`", file.display()))?;
                let r = client.register(&bytes).await?;
                println!("{}", r.id);
                if !r.uploaded {
                    eprintln!("(already registered; nothing uploaded)");
                }
            }
            FnCommand::Ls { all } => {
                let list = if all {
                    client.all_functions().await?
                } else {
                    client.functions().await?
                };
                for f in list {
                    let names: Vec<&str> = f.exports.iter().map(|e| e.name.as_str()).collect();
                    println!("{}  {:>9} bytes  {}", f.id, f.size, names.join(", "));
                }
            }
            FnCommand::Memoize { id, off } => {
                let f = client.memoize(&id, !off).await?;
                println!(
                    "{}: every call {}",
                    f.id,
                    if f.memoize { "memoized" } else { "runs" }
                );
            }
            FnCommand::Show { id } => {
                let f = client.function(&id).await?;
                println!(
                    "id: {}\nsize: {} bytes\nmemoized: {}",
                    f.id, f.size, f.memoize
                );
                for e in &f.exports {
                    println!("{}: {}", e.name, e.signature);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
