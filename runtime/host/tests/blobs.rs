//! `ferry:host/blobs` in one host: blobs read in pieces, new blobs written,
//! hashed and listed in the outcome, and nothing left behind by a guest that
//! gives up or runs past its cap.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{host, load};
use ferry_host::{BlobSource, CallOptions, DirSource, Limits, blob_path};

fn put(dir: &Path, bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes).to_hex().to_string();
    let path = blob_path(dir, &hash).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    hash
}

fn options(dir: &Path) -> CallOptions {
    CallOptions {
        blobs: Some(Arc::new(DirSource(dir.to_owned())) as Arc<dyn BlobSource>),
        ..CallOptions::default()
    }
}

fn fresh_bytes(n: usize) -> Vec<u8> {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn call(
    host: &ferry_host::Host,
    f: &ferry_host::Function,
    export: &str,
    args: &[&str],
    limits: &Limits,
    options: &CallOptions,
) -> (serde_json::Value, ferry_host::Outcome) {
    let export = f.export(export).unwrap();
    let vals = export.args_from_json_strs(args).unwrap();
    let out = host.call(f, export, &vals, limits, options).await.unwrap();
    (export.result_to_json(out.result.as_ref()).unwrap(), out)
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test]
async fn a_guest_hashes_a_blob_read_in_pieces_of_any_size() {
    let host = host();
    let f = load(&host, "blob-probe");
    let dir = tempfile::tempdir().unwrap();
    let bytes = fresh_bytes(3 << 20 | 12_345);
    let hash = put(dir.path(), &bytes);
    let blob = format!(r#"{{"hash":"{hash}","size":{}}}"#, bytes.len());
    for piece in ["1000003", "65536", "1073741824"] {
        let (v, _) = call(
            &host,
            &f,
            "checksum",
            &[&blob, piece],
            &Limits::default(),
            &options(dir.path()),
        )
        .await;
        assert_eq!(v, serde_json::json!({ "ok": hash }), "pieces of {piece}");
    }
    // A reference whose size disagrees with the stored bytes is refused.
    let wrong = format!(r#"{{"hash":"{hash}","size":{}}}"#, bytes.len() + 1);
    let (v, _) = call(
        &host,
        &f,
        "checksum",
        &[&wrong, "65536"],
        &Limits::default(),
        &options(dir.path()),
    )
    .await;
    let e = v["err"].as_str().unwrap();
    assert!(e.contains("not the"), "{e}");
}

#[tokio::test]
async fn a_new_blob_is_named_by_its_hash_and_listed_in_the_outcome() {
    let host = host();
    let f = load(&host, "blob-probe");
    let dir = tempfile::tempdir().unwrap();
    let size = (9 << 20) + 7;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let (v, out) = call(
        &host,
        &f,
        "generate",
        &[&size.to_string(), &seed.to_string()],
        &Limits::default(),
        &options(dir.path()),
    )
    .await;
    let hash = v["ok"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(v["ok"]["size"], size);
    let stored = std::fs::read(blob_path(dir.path(), &hash).unwrap()).unwrap();
    assert_eq!(stored.len() as u64, size);
    assert_eq!(blake3::hash(&stored).to_hex().as_str(), hash);
    assert_eq!(out.blobs.len(), 1);
    assert_eq!(out.blobs[0].hash, hash);
    assert_eq!(out.blobs[0].size, size);
    assert_eq!(entries(&dir.path().join("incoming")), 0);

    // Another task reads it back.
    let blob = format!(r#"{{"hash":"{hash}","size":{size}}}"#);
    let (v, _) = call(
        &host,
        &f,
        "checksum",
        &[&blob, "1048576"],
        &Limits::default(),
        &options(dir.path()),
    )
    .await;
    assert_eq!(v["ok"], hash.as_str());
}

#[tokio::test]
async fn an_unfinished_blob_leaves_nothing_behind() {
    let host = host();
    let f = load(&host, "blob-probe");
    let dir = tempfile::tempdir().unwrap();
    let (v, out) = call(
        &host,
        &f,
        "abandon",
        &["100000"],
        &Limits::default(),
        &options(dir.path()),
    )
    .await;
    assert_eq!(v["ok"], 100_000);
    assert!(out.blobs.is_empty());
    assert_eq!(
        entries(&dir.path().join("incoming")),
        0,
        "temporary file kept"
    );
}

#[tokio::test]
async fn writing_past_the_blob_output_cap_fails_clearly() {
    let host = host();
    let f = load(&host, "blob-probe");
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        blob_output: 6 << 20,
        ..Limits::default()
    };
    let (v, out) = call(
        &host,
        &f,
        "generate",
        &["10485760", "1"],
        &limits,
        &options(dir.path()),
    )
    .await;
    let e = v["err"].as_str().unwrap();
    assert!(
        e.contains("past its cap of 6291456 bytes (blob_output)"),
        "{e}"
    );
    assert!(out.blobs.is_empty());
    assert_eq!(entries(&dir.path().join("incoming")), 0);
    // Under the cap it works.
    let (v, out) = call(
        &host,
        &f,
        "generate",
        &["5000000", "1"],
        &limits,
        &options(dir.path()),
    )
    .await;
    assert_eq!(v["ok"]["size"], 5_000_000);
    assert_eq!(out.blobs.len(), 1);
}

#[tokio::test]
async fn without_a_blob_directory_blobs_fail_clearly() {
    let host = host();
    let f = load(&host, "blob-probe");
    let (v, _) = call(
        &host,
        &f,
        "generate",
        &["10", "1"],
        &Limits::default(),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(v["err"], "this endpoint keeps no new blobs");
    let blob = format!(r#"{{"hash":"{}","size":1}}"#, blake3::hash(b"x").to_hex());
    let (v, _) = call(
        &host,
        &f,
        "checksum",
        &[&blob, "10"],
        &Limits::default(),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(v["err"], "this endpoint serves no blobs");
}
