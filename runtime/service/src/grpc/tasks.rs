//! `ferry.v1.Tasks`: submit, look up, list, cancel and watch tasks.

use ferry_policy::Resource;
use ferry_wit::FailureKind;
use std::collections::HashMap;

use ferry_proto::v1::{self as pb, tasks_server};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, blocking, caller, info, status};
use crate::Service;
use crate::audit::Event;
use crate::core::{Error, TaskState, Watched};

/// Most tasks one `List` page holds.
const MAX_PAGE: usize = 1000;

#[tonic::async_trait]
impl tasks_server::Tasks for Service {
    async fn clear_cache(
        &self,
        req: Request<pb::ClearCacheRequest>,
    ) -> Result<Response<pb::ClearCacheResponse>, Status> {
        let who = caller(&req)?;
        who.require_admin("clear the memo").map_err(status)?;
        let service = self.clone();
        let removed =
            blocking(move || service.inner.store.clear_memo().map_err(Error::internal)).await?;
        self.inner.audit.record(&who, Event::ClearMemo { removed });
        Ok(Response::new(pb::ClearCacheResponse { removed }))
    }

    async fn submit(
        &self,
        req: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let who = caller(&req)?;
        let service = self.clone();
        let req = req.into_inner();
        let mut ids = blocking(move || service.accept(&who, vec![req])).await?;
        Ok(Response::new(pb::SubmitResponse {
            task_id: ids.remove(0),
        }))
    }

    async fn submit_batch(
        &self,
        req: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        let who = caller(&req)?;
        let service = self.clone();
        let tasks = req.into_inner().tasks;
        let task_ids = blocking(move || service.accept(&who, tasks)).await?;
        Ok(Response::new(pb::SubmitBatchResponse { task_ids }))
    }

    async fn get(
        &self,
        req: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        let who = caller(&req)?;
        let id = req.into_inner().task_id;
        let Some(t) = self.inner.broker.task(&id).map_err(status)? else {
            return Err(Status::not_found(format!("unknown task `{id}`")));
        };
        if let Err(e) = who.check(&t) {
            let owned = self.owned_endpoints(&who);
            return match self.view(&who, t, &owned) {
                Some(t) => Ok(Response::new(info(&t))),
                None => Err(status(e)),
            };
        }
        Ok(Response::new(info(&t)))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        let who = caller(&req)?;
        let id = req.into_inner().task_id;
        let service = self.clone();
        let rec = blocking(move || {
            let rec = service.inner.broker.cancel(&who, &id)?;
            service
                .inner
                .audit
                .record(&who, Event::Cancel { task: &id });
            Ok(rec)
        })
        .await?;
        Ok(Response::new(info(&rec)))
    }

    async fn list(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let mut states = Vec::new();
        for code in &req.states {
            states.push(
                TaskState::from_code(*code).ok_or_else(|| {
                    Status::invalid_argument(format!("unknown task state {code}"))
                })?,
            );
        }
        let limit = match req.limit {
            0 => 100,
            n => (n as usize).min(MAX_PAGE),
        };
        let service = self.clone();
        let owned = self.owned_endpoints(&who);
        let tasks = blocking(move || {
            // Unfinished tasks' states live on the board (a dispatch is not
            // stored); the store has the rest.
            let live: HashMap<String, TaskState> = service
                .inner
                .broker
                .board()
                .tasks
                .values()
                .map(|t| (t.id.clone(), t.state))
                .collect();
            let state_of = |t: &crate::TaskRecord| live.get(&t.id).copied().unwrap_or(t.state);
            let mut tasks = service
                .inner
                .store
                .list_tasks(&req.after, limit, &|t| {
                    (who.owns(t) || owned.contains(&t.endpoint))
                        && (req.endpoint.is_empty() || t.endpoint == req.endpoint)
                        && (states.is_empty() || states.contains(&state_of(t)))
                })
                .map_err(Error::internal)?;
            for t in &mut tasks {
                t.state = state_of(t);
            }
            Ok(tasks
                .into_iter()
                .filter_map(|t| service.view(&who, t, &owned))
                .collect::<Vec<_>>())
        })
        .await?;
        let next_after = if tasks.len() == limit {
            tasks.last().map(|t| t.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let tasks = tasks
            .iter()
            .map(|t| pb::TaskInfo {
                result: Vec::new(),
                output: None,
                ..info(t)
            })
            .collect();
        Ok(Response::new(pb::ListTasksResponse { tasks, next_after }))
    }

    type WatchStream = BoxStream<pb::TaskEvent>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let who = caller(&req)?;
        let mut incoming = req.into_inner();
        let buffer = self.inner.broker.rules().watch_buffer.max(1);
        // Answers to the requests themselves (a task already finished, or
        // unknown) and the broker's events, merged into one stream that
        // tonic polls directly: an event takes no extra task hop.
        let (out, replies) = mpsc::channel::<Result<pb::TaskEvent, Status>>(buffer.min(4096));
        let (wid, events) = self.inner.broker.open_watch();
        let events = ReceiverStream::new(events).map(|rec| {
            Ok(pb::TaskEvent {
                task: Some(info(&rec)),
            })
        });
        let stream = futures::stream::select(events, ReceiverStream::new(replies));
        let service = self.clone();
        tokio::spawn(async move {
            let revoked = super::revoked(&service, &who);
            tokio::pin!(revoked);
            'requests: loop {
                let req = tokio::select! {
                    m = incoming.message() => match m {
                        Ok(Some(req)) => req,
                        _ => break,
                    },
                    () = &mut revoked => {
                        let _ = out
                            .send(Err(Status::unauthenticated(
                                "the token this watch was opened with was revoked",
                            )))
                            .await;
                        break;
                    }
                };
                for id in req.task_ids {
                    let event = match service.inner.broker.watch(wid, &who, &id) {
                        Ok(Watched::Following) => continue,
                        Ok(Watched::Finished(t)) => Ok(pb::TaskEvent {
                            task: Some(info(&t)),
                        }),
                        Ok(Watched::Unknown) => Ok(pb::TaskEvent {
                            task: Some(pb::TaskInfo {
                                id: id.clone(),
                                error: Some(pb::TaskError {
                                    kind: FailureKind::UnknownTask.into(),
                                    message: format!("unknown task `{id}`"),
                                }),
                                ..Default::default()
                            }),
                        }),
                        // Refused for this task alone: the stream, and the
                        // caller's other watches on it, go on.
                        Err(Error::Denied(message)) => Ok(pb::TaskEvent {
                            task: Some(pb::TaskInfo {
                                id: id.clone(),
                                error: Some(pb::TaskError {
                                    kind: FailureKind::Denied.into(),
                                    message,
                                }),
                                ..Default::default()
                            }),
                        }),
                        Err(e) => Err(status(e)),
                    };
                    if out.send(event).await.is_err() {
                        break 'requests;
                    }
                }
            }
            service.inner.broker.close_watch(wid);
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let who = caller(&req)?;
        let broker = &self.inner.broker;
        // A user sees the endpoints they may use or own; an admin, all.
        let usable: std::collections::HashSet<String> = self
            .inner
            .identities
            .endpoints(&who)
            .into_iter()
            .map(|e| e.name)
            .collect();
        let endpoints = broker
            .endpoints()
            .into_iter()
            .filter(|e| who.admin || usable.contains(&e.name))
            .map(|e| pb::EndpointStatus {
                online: e.sessions > 0,
                sessions: e.sessions,
                capacity: e.capacity,
                in_flight: e.in_flight,
                queued: e.queued,
                last_heartbeat_ms: e.last_heartbeat_ms,
                gpu: e.offers.iter().find_map(|o| match &o.resource {
                    Resource::Gpu {
                        name,
                        backend,
                        device_type,
                        driver,
                    } => Some(pb::GpuInfo {
                        name: name.clone(),
                        backend: backend.clone(),
                        device_type: device_type.clone(),
                        driver: driver.clone(),
                    }),
                    _ => None,
                }),
                cameras: e
                    .offers
                    .iter()
                    .filter_map(|o| match &o.resource {
                        Resource::Camera { name, backend } => Some(pb::CameraInfo {
                            name: name.clone(),
                            backend: backend.clone(),
                            functions: o.functions.ids().to_vec(),
                        }),
                        _ => None,
                    })
                    .collect(),
                offers: e.offers.iter().map(Into::into).collect(),
                tasks_run: e.tasks_run,
                workers: e
                    .workers
                    .iter()
                    .map(super::endpoints::worker_status)
                    .collect(),
                blocks: e
                    .manager
                    .iter()
                    .flat_map(|m| &m.blocks)
                    .map(|b| pb::BlockStatus {
                        id: b.id.clone(),
                        job: b.job.clone(),
                        phase: b.phase.clone(),
                        workers: b.workers,
                        in_flight: b.in_flight,
                    })
                    .collect(),
                provider: e
                    .manager
                    .as_ref()
                    .map(|m| m.provider.clone())
                    .unwrap_or_default(),
                manager_seen_ms: e.manager.as_ref().map_or(0, |m| m.at_ms),
                name: e.name,
            })
            .collect();
        // A user counts their own unfinished tasks; an admin, every task.
        let counts = if who.admin {
            broker.counts()
        } else {
            broker.unfinished_by(&who.user)
        };
        let mut tasks: Vec<pb::StateCount> = counts
            .into_iter()
            .map(|(state, count)| pb::StateCount {
                state: state.code(),
                count,
            })
            .collect();
        tasks.sort_by_key(|c| c.state);
        let durability = self.inner.config.durability;
        Ok(Response::new(pb::StatusResponse {
            endpoints,
            tasks,
            durability: durability.name().into(),
            durability_loses: durability.loses().unwrap_or_default(),
        }))
    }
}
