//! `ferry bench blob`: a blob by reference into a function that checksums it,
//! against the same read-and-hash done natively on the same file.
//!
//! Two endpoints share the fabric: `local` reads the service's store in place
//! (as `ferry up` sets it up), `remote` fetches every blob over loopback gRPC
//! into its own cache, as an endpoint on another machine would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{BlobRef, Client, WitResult};

use crate::median;
use crate::report::{Figure, Report, Unit};

const MIB: u64 = 1 << 20;
/// Bytes per read of the guest.
const PIECE: u64 = 8 * MIB;

/// Peak resident memory of this process so far, in bytes (`VmHWM`; Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `mib` MiB no run has seen: one random MiB, each copy stamped with its
/// index and the run.
fn write_blob(path: &Path, mib: u64, run: u64) -> std::io::Result<()> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ run ^ u64::from(std::process::id()) << 20;
    let mut block = vec![0u8; MIB as usize];
    for word in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        block[8..16].copy_from_slice(&run.to_le_bytes());
        file.write_all(&block)?;
    }
    // On disk before the clock starts, as a user's input file would be.
    file.into_inner()?.sync_all()
}

async fn checksum(
    client: &Client,
    endpoint: &str,
    f: &str,
    blob: &BlobRef,
) -> anyhow::Result<String> {
    let r: WitResult<String, String> = client
        .submit(endpoint, f, "checksum", &(blob, PIECE))
        .await?
        .await?;
    Result::from(r).map_err(anyhow::Error::msg)
}

pub fn run(
    component: Option<PathBuf>,
    mib: u64,
    runs: u32,
    base: Option<PathBuf>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let path = ferry_local::component("blob-probe", component)?;
    let dir = base
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("ferry-bench-blob-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let fabric =
            ferry_local::Fabric::start(&dir.join("fabric"), "127.0.0.1:0".parse()?, None).await?;
        let client =
            ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls).await?;
        let mut remote = ferry_endpoint::EndpointConfig::new("remote", fabric.url.clone());
        remote.credential = Some(client.register_endpoint("remote", false).await?.1);
        remote.tls = fabric.tls.clone();
        remote.cache_dir = Some(dir.join("remote-cache"));
        remote.gpu = ferry_host::GpuChoice::None;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let remote = tokio::spawn(ferry_endpoint::run(remote, async {
            let _ = stopped.await;
        }));
        let f = client.register(&std::fs::read(&path)?).await?;
        let result = measure(&client, &f.id, mib, runs, &dir, report).await;
        let _ = stop.send(());
        remote.await??;
        fabric.stop().await?;
        result
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(
    client: &Client,
    f: &str,
    mib: u64,
    runs: u32,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let bytes = mib * MIB;
    let rss_start = peak_rss();
    let (mut written, mut native, mut upload, mut first, mut warm, mut total) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut remote_first, mut remote_warm, mut remote_total) = (vec![], vec![], vec![]);
    // Run 0 warms up (compiles the component) and is not counted.
    for run in 0..=u64::from(runs) {
        let file = dir.join(format!("blob-{run}.bin"));
        let (path, m) = (file.clone(), mib);
        let t = Instant::now();
        tokio::task::spawn_blocking(move || write_blob(&path, m, run))
            .await?
            .with_context(|| format!("writing {}", file.display()))?;
        let t_write = t.elapsed();

        let t = Instant::now();
        let (hash, _) = ferry_proto::transfer::hash_file(&file).await?;
        let t_native = t.elapsed();

        let t = Instant::now();
        let up = client.upload_file(&file).await?;
        let t_upload = t.elapsed();
        anyhow::ensure!(up.sent == bytes, "the service already had run {run}'s blob");

        let mut calls = Vec::new();
        for endpoint in ["local", "remote"] {
            let t = Instant::now();
            let got = checksum(client, endpoint, f, &up.blob).await?;
            let t_first = t.elapsed();
            anyhow::ensure!(
                got == hash.to_hex().as_str(),
                "the guest on `{endpoint}` hashed the blob to {got}, not {hash}"
            );
            let t = Instant::now();
            checksum(client, endpoint, f, &up.blob).await?;
            calls.push((t_first, t.elapsed()));
        }
        // The file stays until the end, so that every run writes into fresh
        // page cache, as the store and the caches do.
        if run > 0 {
            written.push(t_write);
            native.push(t_native);
            upload.push(t_upload);
            first.push(calls[0].0);
            warm.push(calls[0].1);
            total.push(t_upload + calls[0].0);
            remote_first.push(calls[1].0);
            remote_warm.push(calls[1].1);
            remote_total.push(t_upload + calls[1].0);
        }
    }
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    report.check(
        "blob",
        format!("{} guest checksums of {mib} MiB blobs, on `local` and `remote`, equal blake3 of the files", 2 * (runs + 1)),
        true,
    );
    let rates = |v: &[Duration]| v.iter().map(|d| rate(*d)).collect::<Vec<_>>();
    for (case, v) in [
        ("native: read + blake3 of the file", &native),
        ("upload", &upload),
        ("`local` (store read in place): upload + first call", &total),
        (
            "`remote` (fetched over loopback): upload + first call",
            &remote_total,
        ),
    ] {
        let mut fig = Figure::new(
            "blob",
            format!("{mib} MiB, {case}"),
            Unit::MegabytesPerSec,
            rates(v),
        );
        if case.starts_with('`') {
            fig = fig.target("≥ 500 MB/s", 500.0, true);
        }
        report.add(fig);
    }
    if !report.tables {
        return Ok(());
    }
    println!("## ferry bench blob");
    println!();
    println!(
        "{mib} MiB blob by reference into `blob-probe` `checksum` (blake3 in the guest, {} MiB reads), service and endpoints in this process on loopback, files in {}; medians of {runs} runs, each with a fresh blob",
        PIECE / MIB,
        dir.display()
    );
    println!();
    println!("| step | median s | MB/s |");
    println!("|---|---|---|");
    let row = |name: &str, v: &[Duration]| {
        let m = median(v.to_vec());
        println!("| {name} | {:.3} | {:.0} |", m.as_secs_f64(), rate(m));
    };
    row(
        "native: write the input file + fsync, into fresh page cache (this machine's pace)",
        &written,
    );
    row("native: read + blake3 of the file (baseline)", &native);
    row(
        "upload: client hashes, streams; service checks, stores",
        &upload,
    );
    row(
        "`local` call: checks the store's file once, guest reads + hashes",
        &first,
    );
    row("`local` call again", &warm);
    row("**`local` end to end: upload + first call**", &total);
    row(
        "`remote` call: fetches over loopback, checks, caches; guest reads + hashes",
        &remote_first,
    );
    row(
        "`remote` call again: blob cached on the endpoint",
        &remote_warm,
    );
    row(
        "**`remote` end to end: upload + first call**",
        &remote_total,
    );
    println!();
    let write = median(written).as_secs_f64();
    for (name, t) in [("local", total), ("remote", remote_total)] {
        let e2e = median(t);
        println!(
            "`{name}` end to end: {:.0} MB/s (target ≥ 500); {:.2}× the time to write the file once",
            rate(e2e),
            e2e.as_secs_f64() / write
        );
    }
    println!(
        "upload: {:.2}× the time to write the file once (the service writes each byte once, fsynced)",
        median(upload).as_secs_f64() / write
    );
    if let (Some(before), Some(after)) = (rss_start, peak_rss()) {
        println!(
            "peak RSS of this process (client + service + endpoint): {} MiB before the first blob, {} MiB after all runs; blob size {mib} MiB",
            before / MIB,
            after / MIB
        );
    }
    Ok(())
}
