//! The content-addressed blob store: `<dir>/<first two hex>/<blake3 hex>`,
//! written through a temporary file that is hashed on the way and renamed
//! into place only when its bytes match the declared hash and size.
//!
//! The store has a cap on its total size; `gc` removes what no task names and
//! no one pinned.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tonic::Status;

pub(crate) struct BlobStore {
    dir: PathBuf,
    max_blob: u64,
    max_total: u64,
    /// Bytes of stored blobs plus uploads under way.
    used: AtomicU64,
    next: AtomicU64,
}

/// What one `gc` pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GcReport {
    pub removed: Vec<String>,
    pub removed_bytes: u64,
    pub kept: u64,
    pub kept_bytes: u64,
    pub referenced: u64,
    pub pinned: u64,
    pub young: u64,
}

/// Blob hashes named anywhere in a MessagePack value: every 64-character
/// string of hex digits (a `blob-ref`'s hash is one). A string that merely
/// looks like a hash keeps a blob alive, never the other way round.
pub(crate) fn named_blobs(msgpack: &[u8], out: &mut HashSet<String>) {
    // str8 of length 64: 0xd9 0x40, then the text.
    let mut i = 0;
    while i + 66 <= msgpack.len() {
        if msgpack[i] == 0xd9 && msgpack[i + 1] == 0x40 {
            let text = &msgpack[i + 2..i + 66];
            if text.iter().all(u8::is_ascii_hexdigit) {
                out.insert(String::from_utf8_lossy(text).to_ascii_lowercase());
                i += 66;
                continue;
            }
        }
        i += 1;
    }
}

/// Blob hashes named anywhere in a JSON value, as [`named_blobs`] finds them
/// in MessagePack.
pub(crate) fn named_in_json(value: &serde_json::Value, out: &mut HashSet<String>) {
    match value {
        serde_json::Value::String(s)
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            out.insert(s.to_ascii_lowercase());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| named_in_json(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| named_in_json(v, out)),
        _ => {}
    }
}

/// Parses a blob name: 64 hex digits of blake3.
pub(crate) fn parse_hash(hash: &str) -> Result<blake3::Hash, Status> {
    ferry_wit::parse_blob_hash(hash).map_err(Status::invalid_argument)
}

impl BlobStore {
    pub(crate) fn open(dir: &Path, max_blob: u64, max_total: u64) -> anyhow::Result<BlobStore> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        // Uploads cut short by a crash leave temporary files; none is live now.
        for entry in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let store = BlobStore {
            dir: dir.to_owned(),
            max_blob,
            max_total,
            used: AtomicU64::new(0),
            next: AtomicU64::new(0),
        };
        let used = store.list()?.iter().map(|b| b.1).sum();
        store.used.store(used, Ordering::Relaxed);
        Ok(store)
    }

    /// Every stored blob: hash, size, last written.
    fn list(&self) -> std::io::Result<Vec<(String, u64, SystemTime)>> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&self.dir)?.flatten() {
            if shard.file_name() == "tmp" {
                continue;
            }
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if ferry_wit::parse_blob_hash(&name).is_err() {
                    continue;
                }
                if let Ok(m) = f.metadata() {
                    out.push((name, m.len(), m.modified().unwrap_or(SystemTime::now())));
                }
            }
        }
        Ok(out)
    }

    /// Removes blobs not in `keep` and not younger than `grace`; with
    /// `dry_run`, only reports what would go.
    pub(crate) fn gc(
        &self,
        named: &HashSet<String>,
        pinned: &HashSet<String>,
        grace: Duration,
        dry_run: bool,
    ) -> std::io::Result<GcReport> {
        let now = SystemTime::now();
        let mut report = GcReport::default();
        for (hash, size, written) in self.list()? {
            let young = now.duration_since(written).unwrap_or_default() < grace;
            if named.contains(&hash) || pinned.contains(&hash) || young {
                report.kept += 1;
                report.kept_bytes += size;
                if named.contains(&hash) {
                    report.referenced += 1;
                } else if pinned.contains(&hash) {
                    report.pinned += 1;
                } else {
                    report.young += 1;
                }
                continue;
            }
            if !dry_run {
                let path = ferry_wit::blob_path(&self.dir, &hash).expect("listed names are hashes");
                // A download under way keeps its open handle.
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        self.used.fetch_sub(size, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            report.removed.push(hash);
            report.removed_bytes += size;
        }
        Ok(report)
    }

    pub(crate) fn path(&self, hash: &blake3::Hash) -> PathBuf {
        ferry_wit::blob_path(&self.dir, &hash.to_hex()).expect("a parsed hash is well-formed")
    }

    /// The size of a stored blob, if present.
    pub(crate) fn stat(&self, hash: &blake3::Hash) -> Option<u64> {
        std::fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }

    /// Receives a blob of `size` bytes that must hash to `hash`, chunk by
    /// chunk; returns whether it was new.
    pub(crate) async fn put(
        &self,
        hash: blake3::Hash,
        size: u64,
        first: Vec<u8>,
        mut rest: impl futures::Stream<Item = Result<Vec<u8>, Status>> + Unpin,
    ) -> Result<bool, Status> {
        use futures::StreamExt;
        if size > self.max_blob {
            return Err(Status::resource_exhausted(format!(
                "a blob of {size} bytes is over this service's cap of {} bytes",
                self.max_blob
            )));
        }
        let present = self.stat(&hash) == Some(size);
        // Room is reserved for the whole blob before its first byte is kept.
        let reserved = if present { 0 } else { size };
        if reserved > 0 {
            let before = self.used.fetch_add(reserved, Ordering::Relaxed);
            if before + reserved > self.max_total {
                self.used.fetch_sub(reserved, Ordering::Relaxed);
                return Err(Status::resource_exhausted(format!(
                    "the blob store is full: it holds {before} of its {} bytes, and this blob has {size} (`ferry blob gc` removes blobs no task names)",
                    self.max_total
                )));
            }
        }
        let tmp = self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        let file = if present {
            None
        } else {
            Some(std::fs::File::create(&tmp).map_err(io)?)
        };
        let stored = file.is_some();
        let mut sink =
            ferry_proto::transfer::Sink::new(file, ferry_proto::transfer::Durability::Synced);
        let mut received = 0u64;
        let mut chunk = Some(Ok(first));
        let result: Result<(), Status> = async {
            while let Some(data) = chunk {
                let data = data?;
                received += data.len() as u64;
                if received > size {
                    return Err(Status::invalid_argument(format!(
                        "the blob is longer than its declared {size} bytes"
                    )));
                }
                sink.write(data).await.map_err(io)?;
                chunk = rest.next().await;
            }
            if received != size {
                return Err(Status::invalid_argument(format!(
                    "the blob ended after {received} of its declared {size} bytes"
                )));
            }
            let actual = sink.finish().await.map_err(io)?;
            if actual != hash {
                return Err(Status::invalid_argument(format!(
                    "hash mismatch: the bytes hash to {actual}, not the declared {hash}"
                )));
            }
            if stored {
                let target = self.path(&hash);
                tokio::fs::create_dir_all(target.parent().expect("sharded"))
                    .await
                    .map_err(io)?;
                tokio::fs::rename(&tmp, &target).await.map_err(io)?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.used.fetch_sub(reserved, Ordering::Relaxed);
            if stored {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
        }
        result.map(|()| !present)
    }
}

fn io(e: std::io::Error) -> Status {
    crate::grpc::internal(format!("blob store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hashes_in_messagepack_and_nothing_else() {
        let a = blake3::hash(b"a").to_hex().to_string();
        let b = blake3::hash(b"b").to_hex().to_string();
        let value = (
            ("x", 5u64),
            vec![
                serde_json::json!({"hash": a, "size": 1}),
                serde_json::json!([b.to_uppercase(), "not-a-hash"]),
            ],
            "0".repeat(63),
        );
        let bytes = rmp_serde::to_vec(&value).unwrap();
        let mut found = HashSet::new();
        named_blobs(&bytes, &mut found);
        assert_eq!(found, HashSet::from([a.clone(), b.clone()]));
        let mut in_json = HashSet::new();
        named_in_json(&serde_json::to_value(&value).unwrap(), &mut in_json);
        assert_eq!(in_json, found);
    }
}
