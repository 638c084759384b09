//! `ferry.v1.Functions`: registration by blake3 id, lookups, memoization.

use ferry_proto::v1::{self as pb, functions_server};
use ferry_wit::FunctionId;
use tonic::{Request, Response, Status, Streaming};

use super::{internal, status};
use crate::Service;
use crate::audit::Event;
use crate::core::Error;
use crate::store::FunctionRecord;

/// Longest a registration's check may take.
const VALIDATION_TIME: std::time::Duration = std::time::Duration::from_secs(60);

fn function_info(r: &FunctionRecord) -> pb::FunctionInfo {
    pb::FunctionInfo {
        id: r.id.clone(),
        size: r.size,
        exports: r
            .exports
            .iter()
            .map(|(name, signature)| pb::ExportInfo {
                name: name.clone(),
                signature: signature.clone(),
            })
            .collect(),
        imports: r.imports.clone(),
        registered_at_ms: r.registered_at_ms,
        memoize: r.memoize,
    }
}

#[tonic::async_trait]
impl functions_server::Functions for Service {
    async fn memoize(
        &self,
        req: Request<pb::MemoizeRequest>,
    ) -> Result<Response<pb::FunctionInfo>, Status> {
        // It changes every user's calls of the function.
        super::caller(&req)?
            .require_admin("memoize a function for everyone")
            .map_err(status)?;
        let req = req.into_inner();
        let record = self
            .inner
            .store
            .set_memoize(&req.id, !req.off)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::not_found(format!("unknown function `{}`; register it first", req.id))
            })?;
        let mut set = self
            .inner
            .memoized
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if req.off {
            set.remove(&req.id);
        } else {
            set.insert(req.id);
        }
        Ok(Response::new(function_info(&record)))
    }

    async fn has(&self, req: Request<pb::HasRequest>) -> Result<Response<pb::HasResponse>, Status> {
        let mut present = Vec::new();
        for id in req.into_inner().ids {
            if self.inner.store.function(&id).map_err(internal)?.is_some() {
                present.push(id);
            }
        }
        Ok(Response::new(pb::HasResponse { present }))
    }

    /// The upload streams to a spool file, hashed on the way, and is refused
    /// as soon as it passes the size cap: it is never held whole in memory.
    /// Uploads wait their turn (a bounded number at once), and the component
    /// is checked off the executor, from a read-only map of the file.
    async fn register(
        &self,
        req: Request<Streaming<pb::RegisterChunk>>,
    ) -> Result<Response<pb::FunctionInfo>, Status> {
        let who = super::caller(&req)?;
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            Status::invalid_argument("empty upload: the first chunk must name the function id")
        })?;
        let id = first.id.trim().to_owned();
        let fid = FunctionId::parse(&id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let max = self.inner.config.max_component_bytes;
        if first.total_size > max {
            return Err(Status::resource_exhausted(format!(
                "component is {} bytes, over the limit of {max} bytes",
                first.total_size
            )));
        }
        if let Some(existing) = self.inner.store.function(&id).map_err(internal)? {
            let record = if existing.registrants.iter().any(|u| **u == *who.user) {
                existing
            } else {
                let user = who.user.to_string();
                self.inner
                    .store
                    .update_function(&id, &mut |f| {
                        if !f.registrants.contains(&user) {
                            f.registrants.push(user.clone());
                        }
                    })
                    .map_err(internal)?
                    .unwrap_or(existing)
            };
            self.inner.audit.record(
                &who,
                Event::Register {
                    function: &id,
                    bytes: record.size,
                    uploaded: false,
                },
            );
            return Ok(Response::new(function_info(&record)));
        }
        self.inner
            .meter
            .upload(&who, first.total_size, std::time::Instant::now())
            .map_err(|e| status(Error::Quota(e)))?;
        let _turn = self
            .inner
            .registrations
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the service is stopping"))?;
        let mut spool = self.inner.components.spool().await.map_err(internal)?;
        let mut chunk = first.data;
        loop {
            if spool.len() + chunk.len() as u64 > max {
                return Err(Status::resource_exhausted(format!(
                    "component is over the limit of {max} bytes"
                )));
            }
            spool.write(&chunk).await.map_err(internal)?;
            match stream.message().await? {
                Some(next) => chunk = next.data,
                None => break,
            }
        }
        let actual = spool.finish().await.map_err(internal)?;
        if actual != id {
            return Err(Status::invalid_argument(format!(
                "hash mismatch: the upload claims to be `{id}` but its {} bytes hash to `{actual}`",
                spool.len()
            )));
        }
        let service = self.clone();
        let check = tokio::task::spawn_blocking(move || {
            let size = spool.len();
            let f = service
                .inner
                .functions
                .load(&spool.map().map_err(Error::internal)?)?;
            service
                .inner
                .components
                .keep(spool, &fid)
                .map_err(Error::internal)?;
            let record = FunctionRecord {
                id: id.clone(),
                size,
                // What a user wrote: the hooks a toolchain adds are left out.
                exports: f
                    .exports
                    .iter()
                    .filter(|e| e.toolchain().is_none())
                    .map(|e| (e.name().to_owned(), e.signature().to_string()))
                    .collect(),
                imports: f.imports.clone(),
                registered_at_ms: ferry_proto::now_ms(),
                memoize: service.memoized(&id),
                registrants: vec![who.user.to_string()],
            };
            service
                .inner
                .store
                .put_function(&record)
                .map_err(Error::internal)?;
            tracing::info!(function = %id, size, "registered");
            service.inner.audit.record(
                &who,
                Event::Register {
                    function: &id,
                    bytes: size,
                    uploaded: true,
                },
            );
            Ok::<_, Error>(record)
        });
        // Validation is linear in the bytes, which are capped; this bounds
        // the wait for it all the same.
        let record = tokio::time::timeout(VALIDATION_TIME, check)
            .await
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "the component could not be checked within {VALIDATION_TIME:?}"
                ))
            })?
            .map_err(|_| internal("a registration's check panicked"))?
            .map_err(status)?;
        Ok(Response::new(function_info(&record)))
    }

    async fn get(
        &self,
        req: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::FunctionInfo>, Status> {
        let id = req.into_inner().id;
        match self.inner.store.function(&id).map_err(internal)? {
            Some(r) => Ok(Response::new(function_info(&r))),
            None => Err(Status::not_found(format!("unknown function `{id}`"))),
        }
    }

    async fn list(
        &self,
        req: Request<pb::ListFunctionsRequest>,
    ) -> Result<Response<pb::ListFunctionsResponse>, Status> {
        let who = super::caller(&req)?;
        let all = req.into_inner().all;
        if all {
            who.require_admin("list every user's functions")
                .map_err(status)?;
        }
        let mut functions: Vec<pb::FunctionInfo> = self
            .inner
            .store
            .functions()
            .map_err(internal)?
            .iter()
            // Records from before registrants were kept belong to no one
            // in particular, and are listed for all.
            .filter(|f| {
                all || f.registrants.is_empty() || f.registrants.iter().any(|u| **u == *who.user)
            })
            .map(function_info)
            .collect();
        functions.sort_by_key(|f| f.registered_at_ms);
        Ok(Response::new(pb::ListFunctionsResponse { functions }))
    }
}
