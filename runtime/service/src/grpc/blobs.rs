//! `ferry.v1.Blobs`: content-addressed data by reference.

use std::time::Duration;

use ferry_proto::v1::{self as pb, blobs_server};
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, internal};
use crate::Service;
use crate::audit::Event;

impl Service {
    fn blob_info(&self, hash: &blake3::Hash) -> Result<pb::BlobInfo, Status> {
        let size = self.inner.blobs.stat(hash);
        let hex = hash.to_hex().to_string();
        let pinned = size.is_some()
            && self
                .inner
                .store
                .pinned_blobs()
                .map_err(internal)?
                .contains(&hex);
        Ok(pb::BlobInfo {
            hash: hex,
            size: size.unwrap_or(0),
            present: size.is_some(),
            pinned,
        })
    }
}

#[tonic::async_trait]
impl blobs_server::Blobs for Service {
    async fn put(
        &self,
        req: Request<Streaming<pb::BlobChunk>>,
    ) -> Result<Response<pb::BlobInfo>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let mut chunks = req.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty blob upload"))?;
        let hash = crate::blobs::parse_hash(&first.hash)?;
        let size = first.size;
        self.inner
            .meter
            .upload(&who, size, std::time::Instant::now())
            .map_err(|e| super::status(crate::core::Error::Quota(e)))?;
        let rest = chunks.map(|c| c.map(|c| c.data));
        self.inner.blobs.put(hash, size, first.data, rest).await?;
        self.inner.audit.record(
            &who,
            Event::BlobPut {
                blob: &hash.to_hex(),
                bytes: size,
            },
        );
        Ok(Response::new(self.blob_info(&hash)?))
    }

    type GetStream = BoxStream<pb::BlobChunk>;

    async fn get(
        &self,
        req: Request<pb::GetBlobRequest>,
    ) -> Result<Response<Self::GetStream>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let hash = crate::blobs::parse_hash(&req.get_ref().hash)?;
        let path = self.inner.blobs.path(&hash);
        let mut file = std::fs::File::open(&path)
            .map_err(|_| Status::not_found(format!("unknown blob {hash}")))?;
        self.inner.audit.record(
            &who,
            Event::BlobGet {
                blob: &hash.to_hex(),
            },
        );
        // A small channel keeps memory flat: the file is read, off the
        // executor, as the client takes it.
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            loop {
                let data = match ferry_proto::transfer::read_chunk(&mut file) {
                    Ok(data) if data.is_empty() => return,
                    Ok(data) => data,
                    Err(e) => {
                        let _ =
                            tx.blocking_send(Err(internal(format!("reading blob {hash}: {e}"))));
                        return;
                    }
                };
                let chunk = pb::BlobChunk {
                    data,
                    ..Default::default()
                };
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn stat(
        &self,
        req: Request<pb::StatBlobRequest>,
    ) -> Result<Response<pb::BlobInfo>, Status> {
        let hash = crate::blobs::parse_hash(&req.get_ref().hash)?;
        Ok(Response::new(self.blob_info(&hash)?))
    }

    async fn pin(
        &self,
        req: Request<pb::PinBlobRequest>,
    ) -> Result<Response<pb::BlobInfo>, Status> {
        let who = super::caller(&req)?;
        who.require_admin("pin blobs").map_err(super::status)?;
        let req = req.into_inner();
        let hash = crate::blobs::parse_hash(&req.hash)?;
        if !req.unpin && self.inner.blobs.stat(&hash).is_none() {
            return Err(Status::not_found(format!("unknown blob {hash}")));
        }
        self.inner
            .store
            .pin_blob(&hash.to_hex(), !req.unpin)
            .map_err(internal)?;
        self.inner.audit.record(
            &who,
            Event::BlobPin {
                blob: &hash.to_hex(),
                pinned: !req.unpin,
            },
        );
        Ok(Response::new(self.blob_info(&hash)?))
    }

    async fn gc(&self, req: Request<pb::GcRequest>) -> Result<Response<pb::GcReport>, Status> {
        let who = super::caller(&req)?;
        who.require_admin("collect blobs").map_err(super::status)?;
        let req = req.into_inner();
        let dry_run = req.dry_run;
        let service = self.clone();
        let report = tokio::task::spawn_blocking(move || {
            let inner = &service.inner;
            let mut named = std::collections::HashSet::new();
            inner
                .store
                .scan_tasks(&mut |t| {
                    crate::blobs::named_blobs(&t.args, &mut named);
                    if let Some(r) = &t.result {
                        crate::blobs::named_blobs(r, &mut named);
                    }
                })
                .map_err(internal)?;
            let pinned = inner
                .store
                .pinned_blobs()
                .map_err(internal)?
                .into_iter()
                .collect();
            inner
                .blobs
                .gc(
                    &named,
                    &pinned,
                    Duration::from_millis(req.grace_ms),
                    req.dry_run,
                )
                .map_err(internal)
        })
        .await
        .map_err(internal)??;
        if !dry_run {
            self.inner.audit.record(
                &who,
                Event::Gc {
                    removed: report.removed.len() as u64,
                },
            );
        }
        Ok(Response::new(pb::GcReport {
            removed: report.removed.len() as u64,
            removed_bytes: report.removed_bytes,
            kept: report.kept,
            kept_bytes: report.kept_bytes,
            referenced: report.referenced,
            pinned: report.pinned,
            young: report.young,
            removed_hashes: report.removed,
        }))
    }
}
