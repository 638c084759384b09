//! `ferry:host/blobs`: large data by reference.
//!
//! A task names a blob by hash; the endpoint's [`BlobSource`] turns that into
//! a verified local file (fetching and caching it on first use), and the guest
//! reads it in pieces, so a blob never has to fit in a message or in memory.
//! A guest's output blobs are written to the source's directory, hashed on
//! the way, and listed in the call's [`Outcome`](crate::Outcome) for the
//! endpoint to send on.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::bindings::ferry::host::blobs as wit;
use super::{Capability, Prepare, TaskState};
use crate::{Error, Host};

/// Largest single read a guest may ask for; bigger asks get this much.
const MAX_READ: u64 = 16 << 20;

/// Where blobs come from: a verified local file for a hash and size.
pub trait BlobSource: Send + Sync + 'static {
    fn fetch<'a>(
        &'a self,
        hash: &'a str,
        size: u64,
    ) -> Pin<Box<dyn Future<Output = Result<PathBuf, String>> + Send + 'a>>;

    /// The blob directory new blobs are written to; `None` takes none.
    fn output_dir(&self) -> Option<&Path> {
        None
    }
}

/// A blob a call wrote, now at [`blob_path`] in its source's output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlob {
    pub hash: String,
    pub size: u64,
    pub path: PathBuf,
}

pub use ferry_wit::{blob_path, parse_blob_hash};

/// Blobs already in a directory laid out as the service stores them
/// (`<dir>/<first two hex>/<hash>`).
pub struct DirSource(pub PathBuf);

impl BlobSource for DirSource {
    fn fetch<'a>(
        &'a self,
        hash: &'a str,
        size: u64,
    ) -> Pin<Box<dyn Future<Output = Result<PathBuf, String>> + Send + 'a>> {
        Box::pin(async move {
            let path = blob_path(&self.0, hash)?;
            match std::fs::metadata(&path) {
                Ok(m) if m.len() == size => Ok(path),
                Ok(m) => Err(format!(
                    "blob {hash} has {} bytes, not the {size} its reference says",
                    m.len()
                )),
                Err(_) => Err(format!("unknown blob {hash}")),
            }
        })
    }

    fn output_dir(&self) -> Option<&Path> {
        Some(&self.0)
    }
}

/// A guest's open blob.
pub struct BlobReader {
    file: std::fs::File,
    remaining: u64,
}

/// A guest's blob in the making: a temporary file, hashed as it grows, that
/// is removed unless the guest finishes it.
pub struct BlobWriter {
    file: std::fs::File,
    tmp: PathBuf,
    hasher: blake3::Hasher,
    size: u64,
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Gone already when finished (renamed into place).
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Per-task state of the blobs capability.
pub(crate) struct BlobsState {
    source: Option<Arc<dyn BlobSource>>,
    table: ResourceTable,
    /// Bytes all of this task's writers may hold together.
    output_cap: u64,
    output_used: u64,
    /// Blobs finished by this task, in order.
    pub(crate) created: Vec<NewBlob>,
}

impl BlobsState {
    pub(crate) fn new(source: Option<Arc<dyn BlobSource>>, output_cap: u64) -> Self {
        BlobsState {
            source,
            table: ResourceTable::new(),
            output_cap,
            output_used: 0,
            created: Vec::new(),
        }
    }
}

/// Writes to a file on the endpoint's disk; failures become the guest's error.
fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl wit::Host for BlobsState {
    async fn open(
        &mut self,
        blob: wit::BlobRef,
    ) -> wasmtime::Result<Result<Resource<BlobReader>, String>> {
        let Some(source) = self.source.clone() else {
            return Ok(Err("this endpoint serves no blobs".into()));
        };
        let path = match source.fetch(&blob.hash, blob.size).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("opening blob {}: {e}", blob.hash))),
        };
        Ok(Ok(self.table.push(BlobReader {
            file,
            remaining: blob.size,
        })?))
    }

    async fn create(&mut self) -> wasmtime::Result<Result<Resource<BlobWriter>, String>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let Some(dir) = self.source.as_ref().and_then(|s| s.output_dir()) else {
            return Ok(Err("this endpoint keeps no new blobs".into()));
        };
        let incoming = dir.join("incoming");
        let tmp = incoming.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = match std::fs::create_dir_all(&incoming).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
        }) {
            Ok(f) => f,
            Err(e) => return Ok(Err(io_error("starting a blob")(e))),
        };
        Ok(Ok(self.table.push(BlobWriter {
            file,
            tmp,
            hasher: blake3::Hasher::new(),
            size: 0,
        })?))
    }

    async fn finish(
        &mut self,
        blob: Resource<BlobWriter>,
    ) -> wasmtime::Result<Result<wit::BlobRef, String>> {
        let w = self.table.delete(blob)?;
        let hash = w.hasher.finalize().to_hex().to_string();
        let dir = self
            .source
            .as_ref()
            .and_then(|s| s.output_dir())
            .expect("a writer exists only where there is an output directory");
        let path = blob_path(dir, &hash).expect("a fresh hash is well-formed");
        let sealed = w
            .file
            .sync_all()
            .and_then(|()| std::fs::create_dir_all(path.parent().expect("sharded")))
            .and_then(|()| std::fs::rename(&w.tmp, &path));
        if let Err(e) = sealed {
            return Ok(Err(io_error("sealing the blob")(e)));
        }
        let blob = NewBlob {
            hash: hash.clone(),
            size: w.size,
            path,
        };
        if !self.created.contains(&blob) {
            self.created.push(blob);
        }
        Ok(Ok(wit::BlobRef { hash, size: w.size }))
    }
}

impl wit::HostWriter for BlobsState {
    async fn write(
        &mut self,
        this: Resource<BlobWriter>,
        bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let n = bytes.len() as u64;
        if self.output_used + n > self.output_cap {
            return Ok(Err(format!(
                "writing {n} more bytes would take this task's blobs past its cap of {} bytes (blob_output)",
                self.output_cap
            )));
        }
        let w = self.table.get_mut(&this)?;
        if let Err(e) = w.file.write_all(&bytes) {
            return Ok(Err(io_error("writing the blob")(e)));
        }
        w.hasher.update(&bytes);
        w.size += n;
        self.output_used += n;
        Ok(Ok(()))
    }

    async fn written(&mut self, this: Resource<BlobWriter>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.size)
    }

    async fn drop(&mut self, this: Resource<BlobWriter>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::HostReader for BlobsState {
    async fn read(
        &mut self,
        this: Resource<BlobReader>,
        max: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let r = self.table.get_mut(&this)?;
        let want = max.min(MAX_READ).min(r.remaining) as usize;
        let mut data = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match r.file.read(&mut data[filled..]) {
                Ok(0) => return Ok(Err("the blob ended early".into())),
                Ok(n) => filled += n,
                Err(e) => return Ok(Err(format!("reading the blob: {e}"))),
            }
        }
        r.remaining -= want as u64;
        Ok(Ok(data))
    }

    async fn remaining(&mut self, this: Resource<BlobReader>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.remaining)
    }

    async fn drop(&mut self, this: Resource<BlobReader>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

/// `ferry:host/blobs`: blobs by hash from the embedder's source, and blobs a
/// task writes, for every function.
pub(crate) struct Factor;

impl Capability for Factor {
    const INTERFACE: Option<&'static str> = Some("ferry:host/blobs");
    /// Where blobs are found; `None` serves none.
    type Grant = Option<Arc<dyn BlobSource>>;
    type State = BlobsState;

    fn add_to_linker(
        linker: &mut Linker<TaskState>,
        get: fn(&mut TaskState) -> &mut BlobsState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<TaskState, HasSelf<BlobsState>>(linker, get)
    }

    fn advertise(_: &Self::Grant, _: &Host) -> Vec<ferry_policy::Offer> {
        Vec::new()
    }

    fn prepare(source: &Self::Grant, task: &mut Prepare<'_>) -> Result<BlobsState, Error> {
        Ok(BlobsState::new(source.clone(), task.limits.blob_output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_source_finds_blobs_by_hash_and_checks_size() {
        let dir = tempfile::tempdir().unwrap();
        let hash = blake3::hash(b"data").to_hex().to_string();
        std::fs::create_dir_all(dir.path().join(&hash[..2])).unwrap();
        std::fs::write(dir.path().join(&hash[..2]).join(&hash), b"data").unwrap();
        let source = DirSource(dir.path().to_owned());
        assert!(source.fetch(&hash, 4).await.is_ok());
        let e = source.fetch(&hash, 5).await.unwrap_err();
        assert!(e.contains("has 4 bytes, not the 5"), "{e}");
        let other = blake3::hash(b"other").to_hex().to_string();
        assert!(
            source
                .fetch(&other, 5)
                .await
                .unwrap_err()
                .contains("unknown blob")
        );
        assert!(
            source
                .fetch("xyz", 1)
                .await
                .unwrap_err()
                .contains("not a blob hash")
        );
    }
}
