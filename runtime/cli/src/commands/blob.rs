//! `ferry blob`: uploads, downloads, pins and gc.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::fabric::{ServiceArg, runtime};
use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum BlobCommand {
    /// Upload a file (only if the service lacks it); prints its blake3 hash.
    Put { file: PathBuf },
    /// Download a blob, checked against its hash.
    Get {
        hash: String,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Whether the service has a blob, its size, and whether it is pinned.
    Stat { hash: String },
    /// Keep a blob through `gc` though no task names it.
    Pin { hash: String },
    /// Let `gc` remove a blob again once no task names it.
    Unpin { hash: String },
    /// Remove blobs that no task names and no one pinned.
    Gc {
        /// Report what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep blobs written less than this long ago: an upload comes
        /// before the submission that names it.
        #[arg(long, default_value = "1h", value_parser = parse_grace)]
        grace: Duration,
    },
}

/// A duration that may be zero (`0`, `0s`): then gc keeps no young blobs.
pub(crate) fn parse_grace(s: &str) -> Result<Duration, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if digits.parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    crate::local::parse_duration_arg(s)
}

/// A byte counter drawn as a progress bar on a terminal (hidden otherwise)
/// while `work` runs.
pub(crate) async fn with_progress<T>(
    what: &str,
    total: u64,
    work: impl std::future::Future<Output = T>,
    progress: ferry_client::Progress,
) -> T {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    let ticker = {
        let bar = bar.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                bar.set_position(progress.load(std::sync::atomic::Ordering::Relaxed));
            }
        })
    };
    let out = work.await;
    ticker.abort();
    bar.finish_and_clear();
    out
}

pub fn blob(service: &ServiceArg, cmd: BlobCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        match cmd {
            BlobCommand::Put { file } => {
                let total = std::fs::metadata(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
                    .len();
                let progress = ferry_client::Progress::default();
                let up = with_progress(
                    "uploading",
                    total,
                    client.upload_file_with(&file, Some(progress.clone())),
                    progress,
                )
                .await?;
                println!("{}", up.blob.hash);
                if up.sent == 0 {
                    eprintln!("(the service already has it; nothing uploaded)");
                } else {
                    eprintln!("uploaded {} bytes", up.sent);
                }
            }
            BlobCommand::Get { hash, out } => {
                let total = client.blob_size(&hash).await?.unwrap_or(0);
                let progress = ferry_client::Progress::default();
                let b = with_progress(
                    "downloading",
                    total,
                    client.download_with(&hash, &out, Some(progress.clone())),
                    progress,
                )
                .await?;
                eprintln!("{} bytes, verified, in {}", b.size, out.display());
            }
            BlobCommand::Stat { hash } => {
                let info = client.blob_info(&hash).await?;
                if !info.present {
                    println!("{hash} not present");
                    return Ok(ExitCode::FAILURE);
                }
                let pinned = if info.pinned { ", pinned" } else { "" };
                println!("{hash} {} bytes{pinned}", info.size);
            }
            BlobCommand::Pin { hash } => {
                client.pin_blob(&hash, true).await?;
                eprintln!("pinned {hash}");
            }
            BlobCommand::Unpin { hash } => {
                client.pin_blob(&hash, false).await?;
                eprintln!("unpinned {hash}");
            }
            BlobCommand::Gc { dry_run, grace } => {
                let r = client.gc_blobs(grace, dry_run).await?;
                let verb = if dry_run { "would remove" } else { "removed" };
                for h in &r.removed_hashes {
                    println!("{h}");
                }
                eprintln!(
                    "{verb} {} blobs ({} bytes); kept {} ({} bytes): {} named by tasks, {} pinned, {} younger than {grace:?}",
                    r.removed, r.removed_bytes, r.kept, r.kept_bytes, r.referenced, r.pinned, r.young
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
