//! `ferry.v1.Blobs`: content-addressed data by reference.

use std::time::Duration;

use ferry_proto::v1::{self as pb, blobs_server};
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, internal};
use crate::Service;
use crate::audit::Event;
use crate::core::Principal;

impl Service {
    /// What `who` may know of a blob: one they may not read is, to them,
    /// not there.
    fn blob_info(&self, who: &Principal, hash: &blake3::Hash) -> Result<pb::BlobInfo, Status> {
        let hex = hash.to_hex().to_string();
        let size = self
            .inner
            .blobs
            .stat(hash)
            .filter(|_| self.inner.grants.may_read(who, &hex));
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

    /// Who may read a blob `who` puts, and whether they are exempt from
    /// quotas: the uploader, or the owner of the task an endpoint says
    /// wrote it. `None` for an endpoint that names no task.
    fn blob_reader(&self, who: &Principal, task: &str) -> Result<Option<(String, bool)>, Status> {
        let Some(endpoint) = &who.endpoint else {
            return Ok(Some((who.user.to_string(), who.admin)));
        };
        if task.is_empty() {
            return Ok(None);
        }
        let t = self.inner.broker.task(task).map_err(super::status)?;
        match t {
            Some(t) if t.endpoint == **endpoint => {
                let admin = self.inner.identities.is_admin(&t.owner);
                Ok(Some((t.owner, admin)))
            }
            _ => Err(Status::permission_denied(format!(
                "task {task} is not one endpoint `{endpoint}` runs"
            ))),
        }
    }
}

#[tonic::async_trait]
impl blobs_server::Blobs for Service {
    async fn put(
        &self,
        req: Request<Streaming<pb::BlobChunk>>,
    ) -> Result<Response<pb::BlobInfo>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let grants = &self.inner.grants;
        let mut chunks = req.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty blob upload"))?;
        let hash = crate::blobs::parse_hash(&first.hash)?;
        let hex = hash.to_hex().to_string();
        let size = first.size;
        let reader = self.blob_reader(&who, &first.task)?;
        if let Some((user, exempt)) = &reader {
            grants
                .room(user, *exempt, &hex, size)
                .map_err(super::status)?;
        }
        self.inner
            .meter
            .upload(&who, size, std::time::Instant::now())
            .map_err(|e| super::status(crate::core::Error::Quota(e)))?;
        // An endpoint may name a task's blob that is here already without
        // sending it again: the host hashed the bytes the task wrote.
        let from_endpoint = who.endpoint.is_some() || !self.inner.config.auth;
        let claim = from_endpoint
            && !first.task.is_empty()
            && reader.is_some()
            && first.data.is_empty()
            && self.inner.blobs.stat(&hash) == Some(size);
        if !claim {
            let rest = chunks.map(|c| c.map(|c| c.data));
            self.inner.blobs.put(hash, size, first.data, rest).await?;
        }
        if let Some((user, exempt)) = &reader {
            grants
                .grant(user, *exempt, &hex, size)
                .map_err(super::status)?;
        }
        self.inner.audit.record(
            &who,
            Event::BlobPut {
                blob: &hash.to_hex(),
                bytes: size,
            },
        );
        Ok(Response::new(self.blob_info(&who, &hash)?))
    }

    type GetStream = BoxStream<pb::BlobChunk>;

    async fn get(
        &self,
        req: Request<pb::GetBlobRequest>,
    ) -> Result<Response<Self::GetStream>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let hash = crate::blobs::parse_hash(&req.get_ref().hash)?;
        if !self.inner.grants.may_read(&who, &hash.to_hex()) {
            return Err(Status::not_found(format!("unknown blob {hash}")));
        }
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
        let who = super::caller_or_endpoint(&req)?;
        let hash = crate::blobs::parse_hash(&req.get_ref().hash)?;
        Ok(Response::new(self.blob_info(&who, &hash)?))
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
        Ok(Response::new(self.blob_info(&who, &hash)?))
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
            self.inner
                .grants
                .forget(&report.removed)
                .map_err(super::status)?;
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
