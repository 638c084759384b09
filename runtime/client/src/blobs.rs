//! Blobs by hash: uploads, downloads, pins and gc.

use std::time::Duration;

use ferry_proto::transfer::{self, Progress};
use ferry_proto::v1 as pb;

use crate::backoff::patiently;
use crate::{Client, ClientError};

/// A blob on the service: content-addressed by the blake3 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobRef {
    pub hash: String,
    pub size: u64,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub blob: BlobRef,
    /// Bytes sent: zero when the service already had the blob.
    pub sent: u64,
}

impl Client {
    /// Uploads a file as a blob, streamed in chunks (never held whole); sends
    /// nothing when the service already has it.
    pub async fn upload_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Upload, ClientError> {
        self.upload_file_with(path, None).await
    }

    /// [`Client::upload_file`], counting bytes sent into `progress`.
    pub async fn upload_file_with(
        &self,
        path: impl AsRef<std::path::Path>,
        progress: Option<Progress>,
    ) -> Result<Upload, ClientError> {
        let path = path.as_ref();
        let (hash, size) = transfer::hash_file(path).await?;
        let blob = BlobRef {
            hash: hash.to_hex().to_string(),
            size,
        };
        if self.has_blob(&blob).await? {
            return Ok(Upload { blob, sent: 0 });
        }
        let info = transfer::put_file(
            &mut self.blobs.clone(),
            path,
            &blob.hash,
            size,
            None,
            progress,
        )
        .await?;
        Ok(Upload {
            blob: BlobRef {
                hash: info.hash,
                size: info.size,
            },
            sent: size,
        })
    }

    /// Uploads bytes as a blob; sends nothing when the service has them.
    pub async fn upload_bytes(&self, bytes: &[u8]) -> Result<Upload, ClientError> {
        let blob = BlobRef {
            hash: blake3::hash(bytes).to_hex().to_string(),
            size: bytes.len() as u64,
        };
        if self.has_blob(&blob).await? {
            return Ok(Upload { blob, sent: 0 });
        }
        let mut chunks: Vec<pb::BlobChunk> = bytes
            .chunks(transfer::CHUNK)
            .map(|c| pb::BlobChunk {
                data: c.to_vec(),
                ..Default::default()
            })
            .collect();
        if chunks.is_empty() {
            chunks.push(pb::BlobChunk::default());
        }
        chunks[0].hash = blob.hash.clone();
        chunks[0].size = blob.size;
        let blobs = &self.blobs;
        patiently(self.patience, || {
            let mut c = blobs.clone();
            let chunks = chunks.clone();
            async move { c.put(tokio_stream::iter(chunks)).await }
        })
        .await?;
        Ok(Upload {
            sent: blob.size,
            blob,
        })
    }

    /// The service's record of a blob: present, size, pinned.
    pub async fn blob_info(&self, hash: &str) -> Result<pb::BlobInfo, ClientError> {
        let req = pb::StatBlobRequest { hash: hash.into() };
        let blobs = &self.blobs;
        Ok(patiently(self.patience, || {
            let mut c = blobs.clone();
            let r = req.clone();
            async move { c.stat(r).await }
        })
        .await?
        .into_inner())
    }

    /// Memoizes every call of a function from now on (or stops, `on = false`).
    pub async fn memoize(&self, function: &str, on: bool) -> Result<pb::FunctionInfo, ClientError> {
        Ok(self
            .functions
            .clone()
            .memoize(pb::MemoizeRequest {
                id: function.into(),
                off: !on,
            })
            .await?
            .into_inner())
    }

    /// Forgets every memoized result; returns how many there were.
    pub async fn clear_cache(&self) -> Result<u64, ClientError> {
        Ok(self
            .tasks
            .clone()
            .clear_cache(pb::ClearCacheRequest {})
            .await?
            .into_inner()
            .removed)
    }

    /// Pins a blob, so that `gc` keeps it though no task names it (or
    /// unpins it).
    pub async fn pin_blob(&self, hash: &str, pinned: bool) -> Result<pb::BlobInfo, ClientError> {
        Ok(self
            .blobs
            .clone()
            .pin(pb::PinBlobRequest {
                hash: hash.into(),
                unpin: !pinned,
            })
            .await?
            .into_inner())
    }

    /// Removes the service's blobs that no task names and no one pinned,
    /// written more than `grace` ago; `dry_run` only reports.
    pub async fn gc_blobs(
        &self,
        grace: Duration,
        dry_run: bool,
    ) -> Result<pb::GcReport, ClientError> {
        Ok(self
            .blobs
            .clone()
            .gc(pb::GcRequest {
                dry_run,
                grace_ms: grace.as_millis() as u64,
            })
            .await?
            .into_inner())
    }

    /// Whether the service has this blob.
    pub async fn has_blob(&self, blob: &BlobRef) -> Result<bool, ClientError> {
        Ok(self.blob_size(&blob.hash).await? == Some(blob.size))
    }

    /// The size of a blob the service has; `None` when it lacks it.
    pub async fn blob_size(&self, hash: &str) -> Result<Option<u64>, ClientError> {
        let info = self.blob_info(hash).await?;
        Ok(info.present.then_some(info.size))
    }

    /// Downloads a blob to `path`, streamed and checked against its hash; the
    /// file appears only once it is whole and verified.
    pub async fn download(
        &self,
        hash: &str,
        path: impl AsRef<std::path::Path>,
    ) -> Result<BlobRef, ClientError> {
        self.download_with(hash, path, None).await
    }

    /// [`Client::download`], counting bytes received into `progress`.
    pub async fn download_with(
        &self,
        hash: &str,
        path: impl AsRef<std::path::Path>,
        progress: Option<Progress>,
    ) -> Result<BlobRef, ClientError> {
        let size = transfer::get_file(
            &mut self.blobs.clone(),
            hash,
            None,
            path.as_ref(),
            transfer::Durability::Synced,
            progress,
        )
        .await?;
        Ok(BlobRef {
            hash: hash.into(),
            size,
        })
    }
}
