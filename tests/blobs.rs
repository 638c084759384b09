//! Blobs across real processes: a gibibyte from the client to a guest in
//! flat memory, blobs a guest writes coming back, gc and pins, the size caps
//! of the service's store and of an endpoint's cache, and mount grants.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use ferry_client::{BlobRef, Client, ClientError, Requirement, SubmitOptions, WitResult};
use ferry_testkit::guest_bytes;

const MIB: u64 = 1 << 20;

/// Runs the `ferry` CLI to its end: exit success, stdout, stderr, and its
/// peak resident memory in bytes (from `wait4`).
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also reports its peak RSS"
)]
fn ferry_measured(args: &[&str]) -> (bool, String, String, u64) {
    let mut child = common::command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI prints a line or two; the pipes never fill before it exits.
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain out-parameters for a child of this process.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, out, err, usage.ru_maxrss as u64 * 1024)
}

/// Peak resident memory of a running process, in bytes (`VmHWM`).
fn peak_rss(p: &Proc) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.0.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// `n` fresh bytes: a xorshift stream seeded from the clock and `salt`.
fn fresh(n: usize, salt: u64) -> Vec<u8> {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Writes `mib` MiB of fresh data (one random MiB, each copy stamped with
/// its index) and returns its blake3.
fn write_big(path: &Path, mib: u64) -> String {
    let base = fresh(MIB as usize, mib);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = blake3::Hasher::new();
    let mut block = base.clone();
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        hasher.update(&block);
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
    hasher.finalize().to_hex().to_string()
}

async fn checksum(
    client: &Client,
    endpoint: &str,
    f: &str,
    blob: &BlobRef,
) -> Result<String, String> {
    let r: WitResult<String, String> = client
        .submit(endpoint, f, "checksum", &(blob, 4 * MIB))
        .await
        .unwrap()
        .await
        .unwrap();
    r.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_goes_from_client_to_guest_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = serve(&dir.path().join("data"), port);
    let endpoint = endpoint_with(
        port,
        "big",
        &dir.path().join("cache"),
        1,
        &["--gpu", "none"],
    );
    let _client = ready(port, "big", 1).await;
    let url = format!("http://127.0.0.1:{port}");

    let file = dir.path().join("gib.bin");
    let hash = write_big(&file, 1024);

    let (ok, out, err, client_rss) =
        ferry_measured(&["--service", &url, "blob", "put", file.to_str().unwrap()]);
    assert!(ok, "blob put failed: {err}");
    assert_eq!(out.trim(), hash);
    std::fs::remove_file(&file).unwrap();

    let probe = ferry_testkit::guest("blob-probe");
    let blob = format!(r#"{{"hash":"{hash}","size":{}}}"#, 1024 * MIB);
    let (ok, out, err, _) = ferry_measured(&[
        "--service",
        &url,
        "call",
        "--endpoint",
        "big",
        "--timeout",
        "10m",
        probe.to_str().unwrap(),
        "checksum",
        &blob,
        "8388608",
    ]);
    assert!(ok, "the call failed: {err}");
    assert_eq!(
        out.trim(),
        format!(r#"{{"ok":"{hash}"}}"#),
        "the guest's blake3 of the blob"
    );

    let (service_rss, endpoint_rss) = (peak_rss(&service), peak_rss(&endpoint));
    eprintln!(
        "peak RSS for a 1 GiB blob: client {} MiB, service {} MiB, endpoint {} MiB",
        client_rss / MIB,
        service_rss / MIB,
        endpoint_rss / MIB
    );
    for (who, rss) in [
        ("client", client_rss),
        ("service", service_rss),
        ("endpoint", endpoint_rss),
    ] {
        assert!(
            rss < 256 * MIB,
            "the {who} held {} MiB for a 1024 MiB blob",
            rss / MIB
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_a_guest_writes_reaches_the_service_and_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "maker", &dir.path().join("cache"), 2);
    let client = ready(port, "maker", 1).await;
    let f = client.register(&guest_bytes("blob-probe")).await.unwrap();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let size = 40 * MIB + 3;
    let made: WitResult<BlobRef, String> = client
        .submit("maker", &f.id, "generate", &(size, seed))
        .await
        .unwrap()
        .await
        .unwrap();
    let made = Result::from(made).unwrap();
    assert_eq!(made.size, size);
    assert_eq!(client.blob_size(&made.hash).await.unwrap(), Some(size));

    let back = dir.path().join("made.bin");
    client.download(&made.hash, &back).await.unwrap();
    let bytes = std::fs::read(&back).unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), made.hash);

    // And it feeds another task by reference.
    assert_eq!(
        checksum(&client, "maker", &f.id, &made).await.unwrap(),
        made.hash
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_blobs_no_task_names_and_no_one_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "gc", &dir.path().join("cache"), 2);
    let client = ready(port, "gc", 1).await;
    let f = client.register(&guest_bytes("blob-probe")).await.unwrap();

    let named = client.upload_bytes(&fresh(300_000, 1)).await.unwrap().blob;
    let pinned = client.upload_bytes(&fresh(200_000, 2)).await.unwrap().blob;
    let loose = client.upload_bytes(&fresh(100_000, 3)).await.unwrap().blob;
    assert_eq!(
        checksum(&client, "gc", &f.id, &named).await.unwrap(),
        named.hash
    );
    let made: WitResult<BlobRef, String> = client
        .submit("gc", &f.id, "generate", &(5000u64, 9u64))
        .await
        .unwrap()
        .await
        .unwrap();
    let made = Result::from(made).unwrap();
    let info = client.pin_blob(&pinned.hash, true).await.unwrap();
    assert!(info.pinned);
    let e = client
        .pin_blob(&blake3::hash(b"absent").to_hex(), true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown blob"), "{e}");

    // Everything is younger than an hour: nothing goes.
    let r = client
        .gc_blobs(Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert_eq!((r.removed, r.kept), (0, 4), "{r:?}");

    let r = client.gc_blobs(Duration::ZERO, true).await.unwrap();
    assert_eq!(r.removed_hashes, vec![loose.hash.clone()], "dry run");
    assert!(
        client.has_blob(&loose).await.unwrap(),
        "a dry run removes nothing"
    );

    let r = client.gc_blobs(Duration::ZERO, false).await.unwrap();
    assert_eq!(r.removed_hashes, vec![loose.hash.clone()]);
    assert_eq!(r.removed_bytes, 100_000);
    assert_eq!((r.referenced, r.pinned), (2, 1), "{r:?}");
    assert!(!client.has_blob(&loose).await.unwrap());
    for kept in [&named, &pinned, &made] {
        assert!(client.has_blob(kept).await.unwrap(), "{} went", kept.hash);
    }

    // Unpinned, it goes too; the CLI does the same.
    client.pin_blob(&pinned.hash, false).await.unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let (ok, out, err, _) = ferry_measured(&["--service", &url, "blob", "gc", "--grace", "0s"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), pinned.hash);
    assert!(err.contains("removed 1 blobs"), "{err}");
    assert!(!client.has_blob(&pinned).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_cap_refuses_what_does_not_fit_until_gc_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve_with(
        &dir.path().join("data"),
        port,
        &["--max-store", "3MiB", "--max-blob", "2MiB"],
    );
    let _ep = endpoint(port, "capped", &dir.path().join("cache"), 1);
    let client = ready(port, "capped", 1).await;

    let first = fresh(1536 << 10, 4);
    let second = fresh(1843 << 10, 5);
    client.upload_bytes(&first).await.unwrap();
    let e = client.upload_bytes(&second).await.unwrap_err();
    assert!(e.to_string().contains("the blob store is full"), "{e}");
    assert!(matches!(
        e,
        ClientError::Service {
            code: tonic::Code::ResourceExhausted,
            ..
        }
    ));
    let e = client
        .upload_bytes(&fresh(2560 << 10, 6))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("over this service's cap of 2097152 bytes"),
        "{e}"
    );
    // The refused uploads left nothing behind and hold no room.
    client.gc_blobs(Duration::ZERO, false).await.unwrap();
    let up = client.upload_bytes(&second).await.unwrap();
    assert_eq!(up.sent, second.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_cache_keeps_to_its_cap_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let cache = dir.path().join("cache");
    let _ep = endpoint_with(
        port,
        "small",
        &cache,
        1,
        &["--gpu", "none", "--blob-cache", "5MiB"],
    );
    let client = ready(port, "small", 1).await;
    let f = client.register(&guest_bytes("blob-probe")).await.unwrap();
    let cached = |b: &BlobRef| {
        let h = &b.hash;
        cache.join("blobs").join(&h[..2]).join(h).exists()
    };

    let a = client.upload_bytes(&fresh(2 << 20, 7)).await.unwrap().blob;
    let b = client.upload_bytes(&fresh(2 << 20, 8)).await.unwrap().blob;
    let c = client.upload_bytes(&fresh(2 << 20, 9)).await.unwrap().blob;
    let huge = client.upload_bytes(&fresh(6 << 20, 10)).await.unwrap().blob;
    for blob in [&a, &b] {
        assert_eq!(
            checksum(&client, "small", &f.id, blob).await.unwrap(),
            blob.hash
        );
    }
    assert!(cached(&a) && cached(&b));
    // a is used again, so b is the least recently used when c needs room:
    // used until the cache's clock (file times) shows it newer than b.
    let used = |x: &BlobRef| {
        let h = &x.hash;
        std::fs::metadata(cache.join("blobs").join(&h[..2]).join(h))
            .and_then(|m| m.modified())
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        checksum(&client, "small", &f.id, &a).await.unwrap();
        if used(&a) > used(&b) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a's use never showed on the cache's clock"
        );
    }
    checksum(&client, "small", &f.id, &c).await.unwrap();
    assert!(cached(&a) && cached(&c), "the recently used stay");
    assert!(!cached(&b), "the least recently used went");

    let e = checksum(&client, "small", &f.id, &huge).await.unwrap_err();
    assert!(
        e.contains("more than this endpoint's blob cache holds (blob_cache = 5242880 bytes)"),
        "{e}"
    );
    // b comes back from the service when needed again.
    assert_eq!(checksum(&client, "small", &f.id, &b).await.unwrap(), b.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_not_granted_to_a_function_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data-dir");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("x.txt"), "shared text").unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("store"), port);

    let client_bytes = guest_bytes("files-probe");
    let probe_id = blake3::hash(&client_bytes).to_hex().to_string();
    let config = dir.path().join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"lab\"\n\
             [[mounts]]\nhost = \"{0}\"\nguest = \"/private\"\nfunctions = [\"{1}\"]\n\
             [[mounts]]\nhost = \"{0}\"\nguest = \"/shared\"\nfunctions = [\"{2}\"]\n",
            data.display(),
            "0".repeat(64),
            probe_id
        ),
    )
    .unwrap();
    let _ep = endpoint_with(
        port,
        "lab",
        &dir.path().join("cache"),
        1,
        &["--gpu", "none", "--config", config.to_str().unwrap()],
    );
    let client = ready(port, "lab", 1).await;
    let f = client.register(&client_bytes).await.unwrap();

    // The endpoint advertises its mounts (guest paths and grants, never
    // its own paths), so the service refuses what it cannot meet at once.
    let read = |path: &'static str, needs: &'static str| {
        let client = client.clone();
        let id = f.id.clone();
        async move {
            client
                .submit_with::<_, WitResult<String, String>>(
                    "lab",
                    &id,
                    "read-file",
                    &(path,),
                    &SubmitOptions::default().mount(needs),
                )
                .await?
                .await
        }
    };
    let shared = read("/shared/x.txt", "/shared").await.unwrap();
    assert_eq!(Result::from(shared), Ok("shared text".to_owned()));

    match read("/private/x.txt", "/private").await {
        Err(ClientError::Unmet {
            requirement,
            kind,
            message,
        }) => {
            assert_eq!(requirement, Requirement::mount("/private"));
            assert_eq!(kind, "bad-mount");
            assert_eq!(
                message,
                format!("mount /private on endpoint lab is not granted to function {probe_id}")
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match read("/nowhere/x.txt", "/nowhere").await {
        Err(ClientError::Unmet { kind, message, .. }) => {
            assert_eq!(kind, "bad-mount");
            assert_eq!(message, "endpoint lab has no mount at /nowhere");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let status = client.status().await.unwrap();
    let offers = format!("{:?}", status.endpoints[0].offers);
    assert!(
        offers.contains("/private") && !offers.contains(&data.display().to_string()),
        "{offers}"
    );
    // Without the declaration the guest simply sees no such directory.
    let r: WitResult<String, String> = client
        .submit("lab", &f.id, "read-file", &("/private/x.txt",))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(Result::from(r).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_files_are_checked_after_a_restart_and_a_shared_store_is_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let _service = serve(&data, port);
    let cache = dir.path().join("cache");
    let mut ep = endpoint(port, "edge", &cache, 1);
    let client = ready(port, "edge", 1).await;
    let f = client.register(&guest_bytes("blob-probe")).await.unwrap();
    let a = client.upload_bytes(&fresh(3 << 20, 11)).await.unwrap().blob;
    assert_eq!(checksum(&client, "edge", &f.id, &a).await.unwrap(), a.hash);

    // A crash tore the cached copy (same size, other bytes): the restarted
    // endpoint checks it before first use and fetches it again.
    ep.kill9();
    let cached = cache.join("blobs").join(&a.hash[..2]).join(&a.hash);
    let mut torn = std::fs::read(&cached).unwrap();
    torn[1 << 20] ^= 0xff;
    std::fs::write(&cached, &torn).unwrap();
    let _ep = endpoint(port, "edge", &cache, 1);
    ready(port, "edge", 1).await;
    assert_eq!(checksum(&client, "edge", &f.id, &a).await.unwrap(), a.hash);
    assert_eq!(
        blake3::hash(&std::fs::read(&cached).unwrap())
            .to_hex()
            .as_str(),
        a.hash,
        "the torn copy was replaced"
    );

    // An endpoint that can read the service's store uses its blobs in place.
    let near_cache = dir.path().join("near-cache");
    let store = data.join("blobs");
    let _near = endpoint_with(
        port,
        "near",
        &near_cache,
        1,
        &[
            "--gpu",
            "none",
            "--shared-blob-store",
            store.to_str().unwrap(),
        ],
    );
    ready(port, "near", 1).await;
    assert_eq!(checksum(&client, "near", &f.id, &a).await.unwrap(), a.hash);
    assert!(
        !near_cache.join("blobs").join(&a.hash[..2]).exists(),
        "a blob in the shared store is not copied"
    );
}
