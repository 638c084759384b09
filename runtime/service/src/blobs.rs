//! The content-addressed blob store: `<dir>/<first two hex>/<blake3 hex>`,
//! written through a temporary file that is hashed on the way and renamed
//! into place only when its bytes match the declared hash and size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tonic::Status;

/// Bytes per chunk of a blob stream.
pub(crate) const CHUNK: usize = 1 << 20;

pub(crate) struct BlobStore {
    dir: PathBuf,
    max_blob: u64,
    next: AtomicU64,
}

/// Parses a blob name: 64 hex digits of blake3.
pub(crate) fn parse_hash(hash: &str) -> Result<blake3::Hash, Status> {
    ferry_host::parse_blob_hash(hash).map_err(Status::invalid_argument)
}

impl BlobStore {
    pub(crate) fn open(dir: &Path, max_blob: u64) -> anyhow::Result<BlobStore> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        // Uploads cut short by a crash leave temporary files; none is live now.
        for entry in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(BlobStore {
            dir: dir.to_owned(),
            max_blob,
            next: AtomicU64::new(0),
        })
    }

    pub(crate) fn path(&self, hash: &blake3::Hash) -> PathBuf {
        ferry_host::blob_path(&self.dir, &hash.to_hex()).expect("a parsed hash is well-formed")
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
        let tmp = self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = if present {
            None
        } else {
            Some(tokio::fs::File::create(&tmp).await.map_err(io)?)
        };
        let mut hasher = blake3::Hasher::new();
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
                hasher.update(&data);
                if let Some(f) = &mut file {
                    f.write_all(&data).await.map_err(io)?;
                }
                chunk = rest.next().await;
            }
            if received != size {
                return Err(Status::invalid_argument(format!(
                    "the blob ended after {received} of its declared {size} bytes"
                )));
            }
            let actual = hasher.finalize();
            if actual != hash {
                return Err(Status::invalid_argument(format!(
                    "hash mismatch: the bytes hash to {actual}, not the declared {hash}"
                )));
            }
            if let Some(f) = &mut file {
                f.sync_all().await.map_err(io)?;
                let target = self.path(&hash);
                tokio::fs::create_dir_all(target.parent().expect("sharded"))
                    .await
                    .map_err(io)?;
                tokio::fs::rename(&tmp, &target).await.map_err(io)?;
            }
            Ok(())
        }
        .await;
        if result.is_err() && file.is_some() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map(|()| !present)
    }
}

fn io(e: std::io::Error) -> Status {
    Status::internal(format!("blob store: {e}"))
}
