//! `ferry-client`: the Rust SDK for a ferry service.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_client::ClientError> {
//! let client = ferry_client::Client::connect("http://127.0.0.1:7171").await?;
//! let f = client.register(&std::fs::read("pi.wasm").unwrap()).await?;
//! let pi: f64 = client.submit("local", &f.id, "pi", &(1_000_000u64, 42u64)).await?.await?;
//! # Ok(()) }
//! ```
//!
//! Arguments and results are serde types carried as MessagePack; a tuple is
//! the argument list. Futures resolve from one watch stream, never by polling.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_proto::v1::{
    self as pb, TaskState, blobs_client::BlobsClient, functions_client::FunctionsClient,
    submit_request, tasks_client::TasksClient,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

pub use ferry_proto::transfer::Progress;
use ferry_proto::transfer::{self, TransferError};
pub use ferry_proto::v1::{BlobInfo, GcReport, TaskInfo, TaskState as State};

/// What can go wrong, from the connection to the task itself.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the ferry service at {url}: {message}")]
    Connect { url: String, message: String },
    /// The service refused the request (bad arguments, unknown function, ...).
    #[error("{message} ({code:?})")]
    Service { code: tonic::Code, message: String },
    /// The task ran and failed, or was cancelled.
    #[error("task {task_id} {kind}: {message}")]
    Task {
        task_id: String,
        kind: String,
        message: String,
    },
    #[error("cannot read component `{path}`: {message}")]
    Read { path: String, message: String },
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    #[error("task {task_id}: cannot decode its result as the requested type: {message}")]
    Decode { task_id: String, message: String },
    #[error("lost the watch on task {0}")]
    WatchLost(String),
    /// Reading or writing a local file for a blob.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// Downloaded bytes that do not hash to the blob's name.
    #[error("blob {expected}: the downloaded bytes hash to {actual}")]
    BlobMismatch { expected: String, actual: String },
    /// A downloaded blob with another size than expected.
    #[error("blob {hash} has {got} bytes, not the {expected} expected")]
    BlobSize {
        hash: String,
        expected: u64,
        got: u64,
    },
}

impl From<TransferError> for ClientError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Status(s) => s.into(),
            TransferError::File { path, error } => ClientError::File {
                path: path.display().to_string(),
                message: error.to_string(),
            },
            TransferError::Mismatch { expected, actual } => {
                ClientError::BlobMismatch { expected, actual }
            }
            TransferError::Size {
                hash,
                expected,
                got,
            } => ClientError::BlobSize {
                hash,
                expected,
                got,
            },
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Service {
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}

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
    functions: FunctionsClient<Channel>,
    blobs: BlobsClient<Channel>,
    tasks: TasksClient<Channel>,
    watcher: Arc<Watcher>,
}

const MAX_MESSAGE: usize = 64 << 20;

impl Client {
    pub async fn connect(url: impl Into<String>) -> Result<Client, ClientError> {
        let url = url.into();
        let fail = |e: &dyn std::fmt::Display| ClientError::Connect {
            url: url.clone(),
            message: e.to_string(),
        };
        let channel = ferry_proto::dial(&url)
            .map_err(|e| fail(&e))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| {
                fail(&std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string()))
            })?;
        let tasks = TasksClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(Client {
            blobs: BlobsClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            functions: FunctionsClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            watcher: Watcher::start(tasks.clone()),
            tasks,
        })
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
            let info = functions
                .get(pb::GetFunctionRequest { id: id.clone() })
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
        let id = self.tasks.clone().submit(req).await?.into_inner().task_id;
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
        Ok(self.tasks.clone().submit(req).await?.into_inner().task_id)
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
        let mut futures = Vec::new();
        let mut batch = Vec::new();
        for a in args {
            let mut req = request(endpoint, function, export, &a)?;
            options.apply(&mut req);
            batch.push(req);
            if batch.len() == 1000 {
                futures.extend(self.send_batch(std::mem::take(&mut batch)).await?);
            }
        }
        if !batch.is_empty() {
            futures.extend(self.send_batch(batch).await?);
        }
        Ok(futures)
    }

    /// Sends a whole graph in one request; returns the task ids, in the order
    /// the tasks were added. The client may go away at once: the service
    /// runs the graph.
    pub async fn submit_graph(&self, graph: Graph) -> Result<Vec<String>, ClientError> {
        Ok(self
            .tasks
            .clone()
            .submit_batch(pb::SubmitBatchRequest { tasks: graph.tasks })
            .await?
            .into_inner()
            .task_ids)
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

    async fn send_batch<R: DeserializeOwned>(
        &self,
        tasks: Vec<pb::SubmitRequest>,
    ) -> Result<Vec<TaskFuture<R>>, ClientError> {
        let ids = self
            .tasks
            .clone()
            .submit_batch(pb::SubmitBatchRequest { tasks })
            .await?
            .into_inner()
            .task_ids;
        Ok(ids.iter().map(|id| self.result(id)).collect())
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
        Ok(self
            .tasks
            .clone()
            .get(pb::GetTaskRequest {
                task_id: task_id.into(),
            })
            .await?
            .into_inner())
    }

    pub async fn cancel(&self, task_id: &str) -> Result<TaskInfo, ClientError> {
        Ok(self
            .tasks
            .clone()
            .cancel(pb::CancelRequest {
                task_id: task_id.into(),
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

    pub async fn functions(&self) -> Result<Vec<pb::FunctionInfo>, ClientError> {
        Ok(self
            .functions
            .clone()
            .list(pb::ListFunctionsRequest {})
            .await?
            .into_inner()
            .functions)
    }
}

fn request<A: Serialize + ?Sized>(
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
        let info =
            transfer::put_file(&mut self.blobs.clone(), path, &blob.hash, size, progress).await?;
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
        self.blobs.clone().put(tokio_stream::iter(chunks)).await?;
        Ok(Upload {
            sent: blob.size,
            blob,
        })
    }

    /// The service's record of a blob: present, size, pinned.
    pub async fn blob_info(&self, hash: &str) -> Result<pb::BlobInfo, ClientError> {
        Ok(self
            .blobs
            .clone()
            .stat(pb::StatBlobRequest { hash: hash.into() })
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

/// A WIT `result<T, E>` as ferry encodes it: `{"ok": T}` or `{"err": E}`.
/// Convert with `Result::from`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WitResult<T, E> {
    Ok(T),
    Err(E),
}

impl<T, E> From<WitResult<T, E>> for Result<T, E> {
    fn from(r: WitResult<T, E>) -> Self {
        match r {
            WitResult::Ok(v) => Ok(v),
            WitResult::Err(e) => Err(e),
        }
    }
}

/// Per-submission settings beyond the arguments.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Limits for this task; zero fields take the endpoint's defaults.
    pub limits: Option<pb::Limits>,
    /// Keep the result and answer identical later submissions from it.
    pub memoize: bool,
    /// Runs allowed after the first, for failures of the kinds in
    /// `retry_on` (`"timeout"`, `"trap"`, ..., or `"*"`).
    pub retries: u32,
    pub retry_on: Vec<String>,
    /// What the task needs from its endpoint: `"gpu"`, or `"mount:/data"`
    /// for a directory granted to its function. The service refuses the
    /// task up front when it knows the endpoint lacks it; otherwise the
    /// endpoint fails it with the reason before running anything.
    pub requires: Vec<String>,
}

impl SubmitOptions {
    fn apply(&self, req: &mut pb::SubmitRequest) {
        req.limits = self.limits;
        req.requires = self.requires.clone();
        req.memoize = self.memoize;
        req.retries = self.retries;
        req.retry_on = self.retry_on.clone();
    }

    /// A task that needs the endpoint's GPU.
    pub fn gpu() -> Self {
        SubmitOptions {
            requires: vec!["gpu".into()],
            ..SubmitOptions::default()
        }
    }

    /// Memoized: an identical submission later runs nothing.
    pub fn memoized(mut self) -> Self {
        self.memoize = true;
        self
    }

    /// Retried up to `times` after failures of these kinds.
    pub fn retry(mut self, times: u32, on: &[&str]) -> Self {
        self.retries = times;
        self.retry_on = on.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Also needs the endpoint's mount at `guest` (e.g. `/data`) granted to
    /// this function.
    pub fn mount(mut self, guest: &str) -> Self {
        self.requires.push(format!("mount:{guest}"));
        self
    }
}

/// Resolves to a task's result once the service pushes its final state.
pub struct TaskFuture<R> {
    task_id: String,
    rx: oneshot::Receiver<TaskInfo>,
    _r: PhantomData<fn() -> R>,
}

impl<R> TaskFuture<R> {
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// This task's result as an argument of another task, anywhere inside
    /// its arguments: the service runs the consumer once this task has
    /// succeeded, and the value never comes back to this process.
    pub fn arg(&self) -> TaskRef {
        TaskRef(self.task_id.clone())
    }
}

/// Another task's result, standing in for a value in a task's arguments.
/// It is encoded as `{"$task": "<id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskRef(pub String);

impl TaskRef {
    /// The result of task `id`, submitted earlier by any process.
    pub fn to(id: impl Into<String>) -> TaskRef {
        TaskRef(id.into())
    }
}

impl Serialize for TaskRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("$task", &self.0)?;
        m.end()
    }
}

/// Awaits every future, in order; the first error ends the wait.
pub async fn join_all<R: DeserializeOwned>(
    futures: impl IntoIterator<Item = TaskFuture<R>>,
) -> Result<Vec<R>, ClientError> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await?);
    }
    Ok(out)
}

/// Many interdependent tasks sent in one request: each [`Graph::add`]
/// returns a reference that later tasks of the graph take as an argument.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    tasks: Vec<pb::SubmitRequest>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a call; its result is the returned reference.
    pub fn add<A: Serialize + ?Sized>(
        &mut self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: &A,
    ) -> Result<TaskRef, ClientError> {
        self.add_with(endpoint, function, export, args, &SubmitOptions::default())
    }

    pub fn add_with<A: Serialize + ?Sized>(
        &mut self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: &A,
        options: &SubmitOptions,
    ) -> Result<TaskRef, ClientError> {
        let mut req = request(endpoint, function, export, args)?;
        options.apply(&mut req);
        self.tasks.push(req);
        Ok(TaskRef(format!("#{}", self.tasks.len() - 1)))
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl<R: DeserializeOwned> Future for TaskFuture<R> {
    type Output = Result<R, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let info = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => {
                return Poll::Ready(Err(ClientError::WatchLost(self.task_id.clone())));
            }
            Poll::Ready(Ok(info)) => info,
        };
        Poll::Ready(decode(&self.task_id, info))
    }
}

/// The result of a finished task as `R`, or its error.
pub fn decode<R: DeserializeOwned>(task_id: &str, info: TaskInfo) -> Result<R, ClientError> {
    if info.state == TaskState::Succeeded as i32 {
        return rmp_serde::from_slice(&info.result).map_err(|e| ClientError::Decode {
            task_id: task_id.to_owned(),
            message: e.to_string(),
        });
    }
    let (kind, message) = info
        .error
        .map(|e| (e.kind, e.message))
        .unwrap_or_else(|| ("failed".into(), "no error recorded".into()));
    Err(ClientError::Task {
        task_id: task_id.to_owned(),
        kind,
        message,
    })
}

/// One watch stream for the whole client, re-established (and every pending
/// id re-sent) if it breaks.
struct Watcher {
    pending: Mutex<HashMap<String, Vec<oneshot::Sender<TaskInfo>>>>,
    requests: mpsc::UnboundedSender<String>,
}

impl Watcher {
    fn start(tasks: TasksClient<Channel>) -> Arc<Watcher> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = Arc::new(Watcher {
            pending: Mutex::default(),
            requests: tx,
        });
        tokio::spawn(Watcher::run(Arc::downgrade(&watcher), tasks, rx));
        watcher
    }

    fn watch(&self, id: &str) -> oneshot::Receiver<TaskInfo> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .push(tx);
        let _ = self.requests.send(id.to_owned());
        rx
    }

    async fn run(
        me: std::sync::Weak<Watcher>,
        mut tasks: TasksClient<Channel>,
        mut requests: mpsc::UnboundedReceiver<String>,
    ) {
        loop {
            let (out, out_rx) = mpsc::unbounded_channel::<pb::WatchRequest>();
            // Re-send everything still pending (all of it, after a reconnect).
            let Some(w) = me.upgrade() else { return };
            let ids: Vec<String> = w
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect();
            drop(w);
            if !ids.is_empty() {
                let _ = out.send(pb::WatchRequest { task_ids: ids });
            }
            let stream = tasks
                .watch(tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx))
                .await;
            let mut events = match stream {
                Ok(s) => s.into_inner(),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    id = requests.recv() => {
                        let Some(id) = id else { return };
                        let mut ids = vec![id];
                        while let Ok(more) = requests.try_recv() {
                            ids.push(more);
                        }
                        let _ = out.send(pb::WatchRequest { task_ids: ids });
                    }
                    event = events.message() => {
                        let Ok(Some(event)) = event else { break };
                        let Some(info) = event.task else { continue };
                        // Final, or the service's answer for a task it does not know.
                        let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
                        let done = state.is_terminal()
                            || (state == TaskState::Unspecified && info.error.is_some());
                        if !done {
                            continue;
                        }
                        let Some(w) = me.upgrade() else { return };
                        let senders = w.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&info.id);
                        for s in senders.into_iter().flatten() {
                            let _ = s.send(info.clone());
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
