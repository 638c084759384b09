//! `ferry.v1.Endpoints`: the one stream each endpoint opens, and component
//! bytes by id.

use ferry_proto::transfer::CHUNK;
use ferry_proto::v1::{
    self as pb, ServiceMessage, endpoint_message, endpoints_server, service_message, task_outcome,
};
use ferry_wit::FailureKind;
use ferry_wit::FunctionId;
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, blocking, internal, status};
use crate::Service;
use crate::audit::Event;
use crate::core::{
    BlockReport, Failure, Hello, ManagerReport, Outcome, Principal, TaskOutput, ToEndpoint,
    WorkerView,
};

/// Most bytes of stdout and of stderr, and log lines, the service keeps per
/// task, whatever an endpoint sends.
const MAX_STREAM: usize = 1 << 20;
const MAX_LOG_LINES: usize = 10_000;

fn to_endpoint(m: ToEndpoint) -> ServiceMessage {
    let kind = match m {
        ToEndpoint::Tasks(tasks) => service_message::Kind::Tasks(pb::AssignmentBatch {
            tasks: tasks
                .into_iter()
                .map(|a| pb::Assignment {
                    task_id: a.task_id,
                    function_id: a.function_id,
                    export: a.export,
                    args: a.args,
                    limits: Some(pb::Limits {
                        timeout_ms: a.limits.timeout_ms,
                        memory_bytes: a.limits.memory_bytes,
                        output_bytes: a.limits.output_bytes,
                    }),
                    requires: a.requires.iter().map(Into::into).collect(),
                    lease: a.lease,
                    submitter: a.submitter,
                })
                .collect(),
        }),
        ToEndpoint::Cancel(task_ids) => service_message::Kind::Cancel(pb::CancelTasks { task_ids }),
        ToEndpoint::Drain => service_message::Kind::Drain(pb::Drain {}),
    };
    ServiceMessage { kind: Some(kind) }
}

fn outcome(o: pb::TaskOutcome) -> Outcome {
    let result = match o.outcome {
        Some(task_outcome::Outcome::Result(bytes)) => Ok(bytes),
        Some(task_outcome::Outcome::Error(e)) => Err(Failure::new(e.kind, e.message)),
        None => Err(Failure::new(
            FailureKind::Internal,
            "the endpoint sent an empty outcome",
        )),
    };
    let output = o.output.map_or_else(TaskOutput::default, |out| {
        let mut truncated = out.truncated;
        let mut cap = |mut b: Vec<u8>| {
            if b.len() > MAX_STREAM {
                truncated += (b.len() - MAX_STREAM) as u64;
                b.truncate(MAX_STREAM);
            }
            b
        };
        let (stdout, stderr) = (cap(out.stdout), cap(out.stderr));
        let mut logs = out.logs;
        logs.truncate(MAX_LOG_LINES);
        TaskOutput {
            stdout,
            stderr,
            logs,
            truncated,
        }
    });
    Outcome {
        task_id: o.task_id,
        lease: o.lease,
        result,
        started_at_ms: o.started_at_ms,
        finished_at_ms: o.finished_at_ms,
        output,
    }
}

impl Service {
    /// An endpoint's manager holds its credential; its owner and an admin
    /// may act for it too.
    fn may_manage(&self, who: &Principal, name: &str) -> Result<(), Status> {
        if !self.inner.config.auth || who.admin || who.endpoint.as_deref() == Some(name) {
            return Ok(());
        }
        match self.inner.identities.endpoint(name) {
            Some(e) if who.endpoint.is_none() && e.owner == *who.user => Ok(()),
            Some(_) => Err(Status::permission_denied(format!(
                "managing endpoint `{name}` takes its credential or its owner's token"
            ))),
            None => Err(Status::not_found(format!(
                "endpoint `{name}` is not registered"
            ))),
        }
    }
}

fn block_report(b: pb::BlockStatus) -> BlockReport {
    BlockReport {
        id: b.id,
        job: b.job,
        phase: b.phase,
        workers: b.workers,
        in_flight: b.in_flight,
    }
}

pub(super) fn worker_status(w: &WorkerView) -> pb::WorkerStatus {
    pb::WorkerStatus {
        session_id: w.session.to_string(),
        block: w.block.clone(),
        capacity: w.capacity,
        in_flight: w.in_flight,
        draining: w.draining,
        last_heartbeat_ms: w.last_seen_ms,
    }
}

#[tonic::async_trait]
impl endpoints_server::Endpoints for Service {
    type SessionStream = BoxStream<ServiceMessage>;

    async fn session(
        &self,
        req: Request<Streaming<pb::EndpointMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let mut incoming = req.into_inner();
        let hello = match incoming.message().await? {
            Some(pb::EndpointMessage {
                kind: Some(endpoint_message::Kind::Hello(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "an endpoint session must start with Hello",
                ));
            }
        };
        // Only the endpoint's own credential serves it (with authentication
        // off, only for measuring what it costs, any session may).
        let auth = self.inner.config.auth;
        if auth && who.endpoint.as_deref() != Some(hello.name.as_str()) {
            return Err(match self.inner.identities.endpoint(&hello.name) {
                None => Status::permission_denied(format!(
                    "endpoint `{}` is not registered: its owner runs `ferry endpoint register {}`",
                    hello.name, hello.name
                )),
                Some(_) => Status::permission_denied(format!(
                    "serving endpoint `{}` takes its credential, which this session did not present",
                    hello.name
                )),
            });
        }
        self.inner.audit.record(
            &who,
            Event::SessionOpen {
                endpoint: &hello.name,
            },
        );
        let broker_hello = Hello {
            name: hello.name,
            concurrency: hello.concurrency,
            version: hello.version,
            offers: ferry_proto::offers_from_wire(&hello.offers),
            block: hello.block,
        };
        let (sid, from_broker) = self
            .inner
            .broker
            .open_session(broker_hello)
            .map_err(status)?;
        let welcome = ServiceMessage {
            kind: Some(service_message::Kind::Welcome(pb::Welcome {
                session_id: sid.to_string(),
            })),
        };
        // tonic polls the broker's channel directly: work reaches the
        // endpoint with no extra task hop.
        let out = futures::stream::once(async { Ok(welcome) })
            .chain(ReceiverStream::new(from_broker).map(|m| Ok(to_endpoint(m))));
        let service = self.clone();
        tokio::spawn(async move {
            let broker = &service.inner.broker;
            // Everything that has already arrived is handled together: one
            // durable commit for all the results in it (group commit).
            let mut chunks = incoming.ready_chunks(1024);
            let revoked = super::revoked(&service, &who);
            tokio::pin!(revoked);
            loop {
                let chunk = tokio::select! {
                    c = chunks.next() => match c {
                        Some(c) => c,
                        None => break,
                    },
                    () = &mut revoked => {
                        tracing::info!(session = sid, "the session's token was revoked");
                        break;
                    }
                };
                let mut credits = 0u32;
                let mut outcomes = Vec::new();
                let mut holding = None;
                let mut broken = false;
                for msg in chunk {
                    match msg.map(|m| m.kind) {
                        Ok(Some(endpoint_message::Kind::Credits(n))) => {
                            credits = credits.saturating_add(n)
                        }
                        Ok(Some(endpoint_message::Kind::Results(batch))) => {
                            outcomes.extend(batch.outcomes.into_iter().map(outcome))
                        }
                        Ok(Some(endpoint_message::Kind::Heartbeat(h))) => holding = Some(h.holding),
                        Ok(_) => {}
                        Err(_) => broken = true,
                    }
                }
                broker.heartbeat(sid, holding.as_deref());
                if !outcomes.is_empty() {
                    let svc = service.clone();
                    if let Err(e) =
                        blocking(move || svc.inner.broker.record_outcomes(sid, outcomes)).await
                    {
                        tracing::error!(session = sid, "recording outcomes: {}", e.message());
                    }
                }
                if credits > 0
                    && let Err(e) = broker.add_credits(sid, credits)
                {
                    tracing::error!(session = sid, "adding credits: {e}");
                }
                if broken {
                    break;
                }
            }
            let svc = service.clone();
            if let Err(e) = blocking(move || svc.inner.broker.session_lost(sid)).await {
                tracing::error!(session = sid, "ending a session: {}", e.message());
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn load(
        &self,
        req: Request<pb::LoadRequest>,
    ) -> Result<Response<pb::EndpointLoad>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let req = req.into_inner();
        self.may_manage(&who, &req.name)?;
        let report = ManagerReport {
            provider: req.provider,
            blocks: req.blocks.into_iter().map(block_report).collect(),
            at_ms: 0,
        };
        let service = self.clone();
        let load = blocking(move || service.inner.broker.manager_report(&req.name, report)).await?;
        Ok(Response::new(pb::EndpointLoad {
            queued: load.queued,
            running: load.running,
            workers: load.workers.iter().map(worker_status).collect(),
        }))
    }

    async fn drain(
        &self,
        req: Request<pb::DrainRequest>,
    ) -> Result<Response<pb::DrainResponse>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        let req = req.into_inner();
        self.may_manage(&who, &req.name)?;
        let workers = self
            .inner
            .broker
            .drain(&req.name, &req.block)
            .map_err(status)?;
        self.inner.audit.record(
            &who,
            Event::Drain {
                endpoint: &req.name,
                block: &req.block,
            },
        );
        Ok(Response::new(pb::DrainResponse { workers }))
    }

    type FetchComponentStream = BoxStream<pb::ComponentChunk>;

    async fn fetch_component(
        &self,
        req: Request<pb::FetchComponentRequest>,
    ) -> Result<Response<Self::FetchComponentStream>, Status> {
        let who = super::caller_or_endpoint(&req)?;
        if who.endpoint.is_none() {
            who.require_admin("fetch component bytes (an endpoint's act)")
                .map_err(status)?;
        }
        let id = req.into_inner().id;
        let unknown = || Status::not_found(format!("unknown function `{id}`"));
        let fid = FunctionId::parse(&id).map_err(|_| unknown())?;
        if self.inner.store.function(&id).map_err(internal)?.is_none() {
            return Err(unknown());
        }
        self.inner
            .audit
            .record(&who, Event::FetchComponent { function: &id });
        let file = self
            .inner
            .components
            .open_file(&fid)
            .await
            .map_err(internal)?
            .ok_or_else(unknown)?;
        // Read from disk a chunk at a time, as the endpoint takes them.
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            let mut data = vec![0; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match file.read(&mut data[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Err(internal(e)),
                }
            }
            if filled == 0 {
                return Ok(None);
            }
            data.truncate(filled);
            Ok(Some((pb::ComponentChunk { data }, file)))
        });
        Ok(Response::new(Box::pin(chunks)))
    }
}
