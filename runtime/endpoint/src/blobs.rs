//! The endpoint's blob cache: blobs fetched from the service by hash on first
//! use, verified, and kept under a size cap (least recently used go first);
//! blobs that tasks write land here too and are sent to the service.
//!
//! Cached files are not fsynced: a blob this process did not fetch or write
//! itself (left by an earlier run, or in a shared store) is hashed once
//! before its first use, so a file torn by a crash is fetched again.
//!
//! An endpoint that can read the service's store (the same machine, or a
//! cluster's shared filesystem) uses blobs there in place, with no copy.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use ferry_host::NewBlob;
use ferry_proto::auth::Conn;
use ferry_proto::transfer;
use ferry_proto::v1::{BlobChunk, StatBlobRequest, blobs_client::BlobsClient};

pub(crate) struct FetchedBlobs {
    client: BlobsClient<Conn>,
    dir: PathBuf,
    cap: u64,
    /// The service's store, when this endpoint can read it.
    shared: Option<PathBuf>,
    /// Files whose bytes this process has checked against their names.
    verified: Mutex<HashSet<PathBuf>>,
    /// One fetch per blob at a time: the second asker waits for the first.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Making room is one pass over the cache at a time.
    evicting: tokio::sync::Mutex<()>,
}

/// Temporary files older than this are leftovers of a crash.
const STALE: Duration = Duration::from_secs(3600);

impl FetchedBlobs {
    pub(crate) fn new(
        service: &str,
        tls: &ferry_proto::tls::ClientTls,
        bearer: ferry_proto::auth::Bearer,
        dir: PathBuf,
        cap: u64,
        shared: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let channel = ferry_proto::dial(service, tls)
            .with_context(|| format!("bad service URL `{service}`"))?
            .connect_lazy();
        let channel = Conn::new(channel, bearer);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the blob cache {}", dir.display()))?;
        Ok(FetchedBlobs {
            client: BlobsClient::new(channel).max_decoding_message_size(64 << 20),
            dir,
            cap,
            shared,
            verified: Mutex::default(),
            fetching: Mutex::default(),
            evicting: tokio::sync::Mutex::new(()),
        })
    }

    async fn get(&self, hash: &str, size: u64) -> anyhow::Result<PathBuf> {
        let path = ferry_host::blob_path(&self.dir, hash).map_err(anyhow::Error::msg)?;
        let lock = self
            .fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(hash.to_owned())
            .or_default()
            .clone();
        let result = async {
            let _one = lock.lock().await;
            if let Some(shared) = &self.shared {
                let there = ferry_host::blob_path(shared, hash).map_err(anyhow::Error::msg)?;
                if self.usable(&there, hash, size).await? {
                    return Ok(there);
                }
            }
            if self.usable(&path, hash, size).await? {
                touch(&path);
                return Ok(path.clone());
            }
            anyhow::ensure!(
                size <= self.cap,
                "blob {hash} has {size} bytes, more than this endpoint's blob cache holds (blob_cache = {} bytes)",
                self.cap
            );
            self.make_room(size).await?;
            transfer::get_file(
                &mut self.client.clone(),
                hash,
                Some(size),
                &path,
                transfer::Durability::Cached,
                None,
            )
            .await?;
            self.trust(&path);
            Ok(path.clone())
        }
        .await;
        let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) == 2 {
            fetching.remove(hash);
        }
        result
    }

    fn trust(&self, path: &Path) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned());
    }

    /// Whether `path` holds blob `hash` of `size` bytes: checked by size, and
    /// by hash the first time this process sees the file. A torn or wrong
    /// file is removed (from the cache only) so that it is fetched again.
    async fn usable(&self, path: &Path, hash: &str, size: u64) -> anyhow::Result<bool> {
        let Ok(m) = tokio::fs::metadata(path).await else {
            return Ok(false);
        };
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path);
        if known {
            anyhow::ensure!(
                m.len() == size,
                "blob {hash} has {} bytes, not the {size} its reference says",
                m.len()
            );
            return Ok(true);
        }
        let good = m.len() == size
            && ferry_proto::transfer::hash_file(path)
                .await
                .is_ok_and(|(h, n)| n == size && h.to_hex().as_str() == hash);
        if good {
            self.trust(path);
        } else if path.starts_with(&self.dir) {
            let _ = tokio::fs::remove_file(path).await;
        }
        Ok(good)
    }

    /// Removes least recently used blobs until `incoming` more bytes fit
    /// under the cap, and temporary files left by a crash.
    async fn make_room(&self, incoming: u64) -> anyhow::Result<()> {
        let _one = self.evicting.lock().await;
        let dir = self.dir.clone();
        let cap = self.cap;
        tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            let stale = |m: &std::fs::Metadata| {
                m.modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > STALE)
            };
            let mut blobs = Vec::new();
            let mut total = 0u64;
            for shard in std::fs::read_dir(&dir)?.flatten() {
                let Ok(files) = std::fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let Ok(m) = f.metadata() else { continue };
                    let name = f.file_name();
                    let name = name.to_string_lossy();
                    if name.contains(".partial-") || shard.file_name() == "incoming" {
                        if stale(&m) {
                            let _ = std::fs::remove_file(f.path());
                        } else {
                            total += m.len();
                        }
                        continue;
                    }
                    total += m.len();
                    blobs.push((m.modified().unwrap_or(now), m.len(), f.path()));
                }
            }
            blobs.sort();
            let mut oldest = blobs.into_iter();
            while total + incoming > cap {
                let Some((_, len, path)) = oldest.next() else {
                    break;
                };
                // A task reading this blob keeps its open handle.
                if std::fs::remove_file(&path).is_ok() {
                    total -= len;
                }
            }
            anyhow::ensure!(
                total + incoming <= cap,
                "the blob cache cannot make room for {incoming} bytes under its cap of {cap} (in use: {total})"
            );
            Ok(())
        })
        .await?
    }

    /// Sends a blob that `task` wrote to the service, naming the task so
    /// that its owner may read the blob; a blob the service has already is
    /// named with no bytes.
    pub(crate) async fn send(&self, blob: &NewBlob, task: &str) -> anyhow::Result<()> {
        self.trust(&blob.path);
        let mut client = self.client.clone();
        let info = client
            .stat(StatBlobRequest {
                hash: blob.hash.clone(),
            })
            .await?
            .into_inner();
        if info.present && info.size == blob.size {
            let claim = BlobChunk {
                hash: blob.hash.clone(),
                size: blob.size,
                data: Vec::new(),
                task: task.to_owned(),
            };
            client.put(tokio_stream::iter([claim])).await?;
            return Ok(());
        }
        transfer::put_file(
            &mut client,
            &blob.path,
            &blob.hash,
            blob.size,
            Some(task),
            None,
        )
        .await?;
        Ok(())
    }
}

/// Marks a blob as just used, for least-recently-used eviction.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

impl ferry_host::BlobSource for FetchedBlobs {
    fn fetch<'a>(
        &'a self,
        hash: &'a str,
        size: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<PathBuf, String>> + Send + 'a>>
    {
        Box::pin(async move { self.get(hash, size).await.map_err(|e| format!("{e:#}")) })
    }

    fn output_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}
