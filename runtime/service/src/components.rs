//! Registered components as files, `<data_dir>/components/<blake3>.wasm`.
//!
//! An upload streams into a spool file as it arrives, hashed on the way, so
//! that no registration is ever held whole in memory; the check reads it
//! through a read-only map, and only a component that passes is renamed to
//! its content-addressed name. Endpoints fetch it in chunks read from disk.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_wit::FunctionId;
use tokio::io::AsyncWriteExt;

pub(crate) struct Components {
    dir: PathBuf,
    incoming: PathBuf,
}

impl Components {
    /// Opens (or creates) the directory; spool files left by a service that
    /// stopped mid-upload are removed.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Components> {
        let incoming = dir.join("incoming");
        std::fs::create_dir_all(&incoming)
            .with_context(|| format!("creating {}", incoming.display()))?;
        for entry in std::fs::read_dir(&incoming)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(Components {
            dir: dir.to_owned(),
            incoming,
        })
    }

    fn path(&self, id: &FunctionId) -> PathBuf {
        self.dir.join(format!("{}.wasm", id.to_hex()))
    }

    /// A new spool file for one upload.
    pub(crate) async fn spool(&self) -> anyhow::Result<Spool> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .incoming
            .join(format!("{}-{n}.part", std::process::id()));
        let file = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Spool {
            file: Some(tokio::io::BufWriter::with_capacity(1 << 20, file)),
            path,
            hasher: blake3::Hasher::new(),
            len: 0,
        })
    }

    /// Makes a checked spool file the component `id`, durably.
    pub(crate) fn keep(&self, spool: Spool, id: &FunctionId) -> anyhow::Result<()> {
        let to = self.path(id);
        std::fs::rename(&spool.path, &to)
            .with_context(|| format!("keeping component {}", to.display()))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", self.dir.display()))?;
        // Dropping the spool now removes nothing: its name is gone.
        drop(spool);
        Ok(())
    }

    /// The component's bytes, mapped read-only; `None` when it has no file.
    pub(crate) fn map(&self, id: &FunctionId) -> anyhow::Result<Option<Mapped>> {
        match std::fs::File::open(self.path(id)) {
            Ok(f) => Ok(Some(Mapped::new(&f)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening component {id}")),
        }
    }

    /// The component's file, for streaming to an endpoint.
    pub(crate) async fn open_file(
        &self,
        id: &FunctionId,
    ) -> anyhow::Result<Option<tokio::fs::File>> {
        match tokio::fs::File::open(self.path(id)).await {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening component {id}")),
        }
    }

    /// Writes a component known to be valid (one stored before components
    /// were files).
    pub(crate) fn put(&self, id: &FunctionId, bytes: &[u8]) -> anyhow::Result<()> {
        let part = self.incoming.join(format!("{}.part", id.to_hex()));
        std::fs::write(&part, bytes)?;
        std::fs::File::open(&part)?.sync_all()?;
        std::fs::rename(&part, self.path(id))?;
        Ok(())
    }
}

/// One upload on its way to disk; removed when dropped unless kept.
pub(crate) struct Spool {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    path: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
}

impl Spool {
    pub(crate) async fn write(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        match &mut self.file {
            Some(f) => Ok(f.write_all(data).await?),
            None => anyhow::bail!("the spool file is closed"),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Flushes and syncs the file; returns the blake3 of what was written.
    pub(crate) async fn finish(&mut self) -> anyhow::Result<String> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
            f.into_inner().sync_all().await?;
        }
        Ok(self.hasher.finalize().to_hex().to_string())
    }

    /// What was written, mapped read-only.
    pub(crate) fn map(&self) -> anyhow::Result<Mapped> {
        Mapped::new(&std::fs::File::open(&self.path)?)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A component file mapped read-only.
pub(crate) struct Mapped(Option<memmap2::Mmap>);

impl Mapped {
    fn new(file: &std::fs::File) -> anyhow::Result<Mapped> {
        if file.metadata()?.len() == 0 {
            // An empty file cannot be mapped.
            return Ok(Mapped(None));
        }
        // SAFETY: a component file is written once, under a name no other
        // upload uses (a spool) or its content's hash (a kept one), and the
        // service never writes to it again; nothing changes it under the map.
        let map = unsafe { memmap2::Mmap::map(file) }.context("mapping a component file")?;
        Ok(Mapped(Some(map)))
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}
