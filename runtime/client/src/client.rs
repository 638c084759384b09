//! The connection: functions, submissions, tasks and status.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::auth::{Bearer, Conn};
use ferry_proto::tls::ClientTls;
use ferry_proto::v1::{
    self as pb, TaskInfo, TaskState, auth_client::AuthClient, blobs_client::BlobsClient,
    functions_client::FunctionsClient, submit_request, tasks_client::TasksClient,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::patiently;
use crate::watch::Watcher;
use crate::{ClientError, Graph, SubmitOptions, TaskFuture};

/// A registered function.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The function id: blake3 hex of the component bytes.
    pub id: String,
    /// Whether bytes were sent (false when the service already had them).
    pub uploaded: bool,
    pub info: pb::FunctionInfo,
}

/// A connection to a ferry service. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) functions: FunctionsClient<Conn>,
    pub(crate) blobs: BlobsClient<Conn>,
    pub(crate) tasks: TasksClient<Conn>,
    pub(crate) auth: AuthClient<Conn>,
    pub(crate) watcher: Arc<Watcher>,
    /// How long a call refused for a quota is tried again.
    pub(crate) patience: Duration,
}

/// How long a call refused for a quota is retried, unless set.
pub const DEFAULT_QUOTA_PATIENCE: Duration = Duration::from_secs(600);

const MAX_MESSAGE: usize = 64 << 20;

/// Batch requests a bulk submission has on the wire at once.
pub const BATCHES_IN_FLIGHT: usize = 4;

impl Client {
    /// Connects with the token found for `url`: `FERRY_TOKEN`, else the
    /// credentials file that `ferry login` (or `ferry up`) wrote.
    pub async fn connect(url: impl Into<String>) -> Result<Client, ClientError> {
        let url = url.into();
        let token = ferry_proto::credentials::token_for(&url, None);
        Client::connect_as(url, token.as_deref()).await
    }

    /// Connects presenting exactly `token` (`None`: no token at all), with
    /// TLS from `FERRY_CA`, `FERRY_CLIENT_CERT` and `FERRY_CLIENT_KEY`.
    pub async fn connect_as(
        url: impl Into<String>,
        token: Option<&str>,
    ) -> Result<Client, ClientError> {
        let url = url.into();
        let tls = ClientTls::from_env().map_err(|e| ClientError::Connect {
            url: url.clone(),
            message: e.to_string(),
        })?;
        Client::connect_with(url, token, &tls).await
    }

    /// Connects presenting `token`, trusting an `https://` service as `tls`
    /// says.
    pub async fn connect_with(
        url: impl Into<String>,
        token: Option<&str>,
        tls: &ClientTls,
    ) -> Result<Client, ClientError> {
        let url = url.into();
        let bearer = Bearer::new(token).map_err(|message| ClientError::Connect {
            url: url.clone(),
            message,
        })?;
        let fail = |e: &dyn std::error::Error| {
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            ClientError::Connect {
                message: ferry_proto::tls::explain(&url, &message).unwrap_or(message),
                url: url.clone(),
            }
        };
        let channel = ferry_proto::dial(&url, tls)
            .map_err(|e| fail(&e))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| fail(&e))?;
        if url.starts_with("https://") && !tls.has_identity() {
            // TLS 1.3 finishes the client's side of a handshake before the
            // service has judged its certificate: a service that wants one
            // would otherwise surface as a dropped first call, far from here.
            probe(channel.clone()).await.map_err(|status| {
                let explained = match fail(&status) {
                    ClientError::Connect { message, .. } => {
                        ferry_proto::tls::explain_dropped(&url, &message).unwrap_or(message)
                    }
                    other => other.to_string(),
                };
                ClientError::Connect {
                    message: explained,
                    url: url.clone(),
                }
            })?;
        }
        let channel = Conn::new(channel, bearer);
        let tasks = TasksClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(Client {
            blobs: BlobsClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            auth: AuthClient::new(channel.clone()),
            functions: FunctionsClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            watcher: Watcher::start(tasks.clone()),
            tasks,
            patience: DEFAULT_QUOTA_PATIENCE,
        })
    }

    /// How long a call the service refuses for a quota (requests a second,
    /// queued tasks, bytes uploaded) is tried again, backing off, before it
    /// fails; zero fails at once.
    pub fn with_quota_patience(mut self, patience: Duration) -> Client {
        self.patience = patience;
        self
    }

    async fn submit_one(&self, req: pb::SubmitRequest) -> Result<String, ClientError> {
        let tasks = &self.tasks;
        Ok(patiently(self.patience, || {
            let mut c = tasks.clone();
            let r = req.clone();
            async move { c.submit(r).await }
        })
        .await?
        .into_inner()
        .task_id)
    }

    async fn submit_many(&self, tasks: Vec<pb::SubmitRequest>) -> Result<Vec<String>, ClientError> {
        let req = pb::SubmitBatchRequest { tasks };
        let client = &self.tasks;
        Ok(patiently(self.patience, || {
            let mut c = client.clone();
            let r = req.clone();
            async move { c.submit_batch(r).await }
        })
        .await?
        .into_inner()
        .task_ids)
    }

    /// Registers component bytes; uploads them only if the service lacks them.
    pub async fn register(&self, bytes: &[u8]) -> Result<Registered, ClientError> {
        let id = blake3::hash(bytes).to_hex().to_string();
        let mut functions = self.functions.clone();
        let has = functions
            .has(pb::HasRequest {
                ids: vec![id.clone()],
            })
            .await?
            .into_inner();
        if has.present.contains(&id) {
            // The header alone: the service counts this user among the
            // function's registrants and uploads nothing.
            let header = pb::RegisterChunk {
                id: id.clone(),
                total_size: bytes.len() as u64,
                data: Vec::new(),
            };
            let info = functions
                .register(tokio_stream::iter([header]))
                .await?
                .into_inner();
            return Ok(Registered {
                id,
                uploaded: false,
                info,
            });
        }
        let total = bytes.len() as u64;
        let chunks: Vec<pb::RegisterChunk> = bytes
            .chunks(1 << 20)
            .enumerate()
            .map(|(i, c)| pb::RegisterChunk {
                id: if i == 0 { id.clone() } else { String::new() },
                total_size: total,
                data: c.to_vec(),
            })
            .collect();
        let chunks = if chunks.is_empty() {
            vec![pb::RegisterChunk {
                id: id.clone(),
                total_size: 0,
                data: vec![],
            }]
        } else {
            chunks
        };
        let info = functions
            .register(tokio_stream::iter(chunks))
            .await?
            .into_inner();
        Ok(Registered {
            id,
            uploaded: true,
            info,
        })
    }

    /// Reads a component file and registers it (see [`Client::register`]).
    pub async fn register_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Registered, ClientError> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path).await.map_err(|e| ClientError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.register(&bytes).await
    }

    /// Submits one call; `args` is the argument list (a tuple, or a `Vec` of
    /// values). The future resolves with the result as `R`.
    pub async fn submit<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: &A,
    ) -> Result<TaskFuture<R>, ClientError> {
        self.submit_with(endpoint, function, export, args, &SubmitOptions::default())
            .await
    }

    /// [`submit`](Client::submit) with limits or requirements.
    pub async fn submit_with<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: &A,
        options: &SubmitOptions,
    ) -> Result<TaskFuture<R>, ClientError> {
        let mut req = request(endpoint, function, export, args)?;
        options.apply(&mut req);
        let id = self.submit_one(req).await?;
        Ok(self.result(&id))
    }

    /// Submits with the arguments as a JSON array; returns the task id.
    pub async fn submit_json(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        json_args: &str,
        options: &SubmitOptions,
    ) -> Result<String, ClientError> {
        let mut req = pb::SubmitRequest {
            endpoint: endpoint.into(),
            function_id: function.into(),
            export: export.into(),
            args: Some(submit_request::Args::Json(json_args.into())),
            ..Default::default()
        };
        options.apply(&mut req);
        self.submit_one(req).await
    }

    /// Submits many calls of one export in one request each 1,000 tasks.
    pub async fn submit_batch<A: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<TaskFuture<R>>, ClientError> {
        self.submit_batch_with(endpoint, function, export, args, &SubmitOptions::default())
            .await
    }

    /// [`Client::submit_batch`] with the same options for every task.
    pub async fn submit_batch_with<A: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: impl IntoIterator<Item = A>,
        options: &SubmitOptions,
    ) -> Result<Vec<TaskFuture<R>>, ClientError> {
        let ids = self
            .submit_batch_ids(endpoint, function, export, args, options)
            .await?;
        Ok(ids.iter().map(|id| self.result(id)).collect())
    }

    /// Submits many calls as [`Client::submit_batch_with`] does, and returns
    /// their task ids without following them: for work that others (or
    /// [`Client::result`] later) collect.
    ///
    /// Requests of 1,000 tasks each go out [`BATCHES_IN_FLIGHT`] at a time,
    /// so that the service admits one while the next travels. The ids come
    /// back in the order of `args`. On an error, the requests before the one
    /// that failed were admitted, and so may some of the few sent after it.
    pub async fn submit_batch_ids<A: Serialize>(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: impl IntoIterator<Item = A>,
        options: &SubmitOptions,
    ) -> Result<Vec<String>, ClientError> {
        use futures::{StreamExt, TryStreamExt};
        let mut batches: Vec<Vec<pb::SubmitRequest>> = Vec::new();
        for a in args {
            let mut req = request(endpoint, function, export, &a)?;
            options.apply(&mut req);
            match batches.last_mut() {
                Some(b) if b.len() < 1000 => b.push(req),
                _ => batches.push(vec![req]),
            }
        }
        let sent: Vec<Vec<String>> = futures::stream::iter(batches)
            .map(|b| self.submit_many(b))
            .buffered(BATCHES_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(sent.into_iter().flatten().collect())
    }

    /// Sends a whole graph in one request; returns the task ids, in the order
    /// the tasks were added. The client may go away at once: the service
    /// runs the graph.
    pub async fn submit_graph(&self, graph: Graph) -> Result<Vec<String>, ClientError> {
        self.submit_many(graph.tasks).await
    }

    /// `submit_batch` and await every result, in order.
    pub async fn map<A: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, ClientError> {
        let futures = self
            .submit_batch::<A, R>(endpoint, function, export, args)
            .await?;
        let mut out = Vec::with_capacity(futures.len());
        for f in futures {
            out.push(f.await?);
        }
        Ok(out)
    }

    /// A future for a task submitted earlier, by this process or another.
    pub fn result<R: DeserializeOwned>(&self, task_id: &str) -> TaskFuture<R> {
        TaskFuture {
            task_id: task_id.to_owned(),
            rx: self.watcher.watch(task_id),
            _r: PhantomData,
        }
    }

    /// The task's current state, without waiting.
    pub async fn task(&self, task_id: &str) -> Result<TaskInfo, ClientError> {
        let req = pb::GetTaskRequest {
            task_id: task_id.into(),
        };
        let tasks = &self.tasks;
        Ok(patiently(self.patience, || {
            let mut c = tasks.clone();
            let r = req.clone();
            async move { c.get(r).await }
        })
        .await?
        .into_inner())
    }

    pub async fn cancel(&self, task_id: &str) -> Result<TaskInfo, ClientError> {
        let req = pb::CancelRequest {
            task_id: task_id.into(),
        };
        let tasks = &self.tasks;
        Ok(patiently(self.patience, || {
            let mut c = tasks.clone();
            let r = req.clone();
            async move { c.cancel(r).await }
        })
        .await?
        .into_inner())
    }

    /// One page of tasks in order of id, filtered by state (any, if empty)
    /// and endpoint (any, if empty); pass the returned `next_after` for the
    /// next page (empty at the end).
    pub async fn list_tasks(
        &self,
        states: &[TaskState],
        endpoint: &str,
        after: &str,
        limit: u32,
    ) -> Result<pb::ListTasksResponse, ClientError> {
        Ok(self
            .tasks
            .clone()
            .list(pb::ListTasksRequest {
                states: states.iter().map(|s| *s as i32).collect(),
                endpoint: endpoint.into(),
                after: after.into(),
                limit,
            })
            .await?
            .into_inner())
    }

    pub async fn status(&self) -> Result<pb::StatusResponse, ClientError> {
        Ok(self
            .tasks
            .clone()
            .status(pb::StatusRequest {})
            .await?
            .into_inner())
    }

    pub async fn function(&self, id: &str) -> Result<pb::FunctionInfo, ClientError> {
        Ok(self
            .functions
            .clone()
            .get(pb::GetFunctionRequest { id: id.into() })
            .await?
            .into_inner())
    }

    /// The functions this user registered.
    pub async fn functions(&self) -> Result<Vec<pb::FunctionInfo>, ClientError> {
        self.list_functions(false).await
    }

    /// Every registered function (admin only).
    pub async fn all_functions(&self) -> Result<Vec<pb::FunctionInfo>, ClientError> {
        self.list_functions(true).await
    }

    async fn list_functions(&self, all: bool) -> Result<Vec<pb::FunctionInfo>, ClientError> {
        Ok(self
            .functions
            .clone()
            .list(pb::ListFunctionsRequest { all })
            .await?
            .into_inner()
            .functions)
    }
}

pub(crate) fn request<A: Serialize + ?Sized>(
    endpoint: &str,
    function: &str,
    export: &str,
    args: &A,
) -> Result<pb::SubmitRequest, ClientError> {
    let bytes = rmp_serde::to_vec(args).map_err(|e| ClientError::Encode(e.to_string()))?;
    Ok(pb::SubmitRequest {
        endpoint: endpoint.into(),
        function_id: function.into(),
        export: export.into(),
        args: Some(submit_request::Args::Msgpack(bytes)),
        ..Default::default()
    })
}

/// One health check, which needs no token: it proves the TLS session whole.
async fn probe(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
}
