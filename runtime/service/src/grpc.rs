//! The gRPC face of [`Service`]: functions, tasks, endpoints, plus health and
//! reflection so that `grpcurl` can list and call everything.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_host::{Error as HostError, Function, FunctionId};
use ferry_proto::v1::{
    self as pb, CancelTasks, ServiceMessage, TaskState, Welcome, blobs_server, endpoint_message,
    endpoints_server, functions_server, service_message, submit_request, tasks_server,
};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Service;
use crate::sched::{Session, info, now_ms, set_state};
use crate::store::{FunctionRecord, TaskRecord};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Bytes per message of a component or blob stream.
use ferry_proto::transfer::CHUNK;

/// What the service knows of its endpoints when it checks submissions.
struct Known {
    endpoints: std::collections::HashSet<String>,
    gpuless: Vec<String>,
    cameras: HashMap<String, Vec<pb::CameraInfo>>,
}

/// Refuses a task that needs a camera its endpoint does not grant its
/// function (`need`: `camera`, or `camera:NAME`).
fn check_camera_grant(
    endpoint: &str,
    cameras: &[pb::CameraInfo],
    need: &str,
    function_id: &str,
) -> Result<(), Status> {
    let granted = |c: &pb::CameraInfo| c.functions.iter().any(|f| f == "*" || f == function_id);
    let refuse = |m: String| Err(Status::failed_precondition(m));
    match need.strip_prefix("camera:") {
        None if cameras.is_empty() => refuse(format!("endpoint {endpoint} has no camera")),
        None if !cameras.iter().any(granted) => refuse(format!(
            "endpoint {endpoint} grants function {function_id} no camera"
        )),
        None => Ok(()),
        Some(name) => match cameras.iter().find(|c| c.name == name) {
            None => refuse(format!("endpoint {endpoint} has no camera named {name}")),
            Some(c) if !granted(c) => refuse(format!(
                "camera {name} on endpoint {endpoint} is not granted to function {function_id}"
            )),
            Some(_) => Ok(()),
        },
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("{e:#}"))
}

pub(crate) fn host_status(e: HostError) -> Status {
    match &e {
        HostError::BadComponent(_) => Status::invalid_argument(e.to_string()),
        HostError::UngrantedImport { .. } => Status::failed_precondition(e.to_string()),
        HostError::UnknownExport { .. } | HostError::AmbiguousExport { .. } => {
            Status::not_found(e.to_string())
        }
        HostError::BadArguments { .. } | HostError::UnsupportedSignature { .. } => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

/// Time-ordered, unique task ids: `<ms>-<sequence>-<random>` in hex.
fn new_task_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let r = h.finalize();
    format!(
        "{:012x}-{:08x}-{}",
        nanos / 1_000_000,
        seq & 0xffff_ffff,
        &r.to_hex()[..8]
    )
}

impl Service {
    /// The compiled function, from memory, the compiled cache or the store.
    pub(crate) fn function(&self, id: &str) -> Result<Arc<Function>, Status> {
        let fid = FunctionId::parse(id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(f) = self.inner.host.cached(fid).map_err(internal)? {
            return Ok(f);
        }
        let bytes = self
            .inner
            .store
            .function_bytes(id)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::not_found(format!("unknown function `{id}`; register it first"))
            })?;
        self.inner.host.load(&bytes).map_err(host_status)
    }

    /// Checks one submission and turns it into a record; nothing is stored yet.
    fn prepare(
        &self,
        req: pb::SubmitRequest,
        known: &Known,
        batch: &[TaskRecord],
    ) -> Result<TaskRecord, Status> {
        if !known.endpoints.contains(&req.endpoint) {
            let mut names: Vec<&str> = known.endpoints.iter().map(String::as_str).collect();
            names.sort();
            return Err(Status::not_found(format!(
                "unknown endpoint `{}`; known endpoints: {}",
                req.endpoint,
                if names.is_empty() {
                    "(none yet)".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        let f = self.function(&req.function_id)?;
        let function_id = f.id().to_hex();
        for need in &req.requires {
            match need.as_str() {
                "gpu" if known.gpuless.contains(&req.endpoint) => {
                    return Err(Status::failed_precondition(format!(
                        "endpoint {} has no GPU adapter",
                        req.endpoint
                    )));
                }
                "gpu" => {}
                mount if mount.starts_with("mount:/") => {}
                camera if camera == "camera" || camera.starts_with("camera:") => {
                    if let Some(cameras) = known.cameras.get(&req.endpoint) {
                        check_camera_grant(&req.endpoint, cameras, camera, &function_id)?;
                    }
                }
                other => {
                    return Err(Status::invalid_argument(format!(
                        "unknown requirement `{other}`; a task may require: gpu, camera, camera:NAME, mount:/GUEST/PATH"
                    )));
                }
            }
        }
        let export = f.export(&req.export).map_err(host_status)?;
        export.check_supported().map_err(host_status)?;
        let limits = req.limits.unwrap_or_default();
        let now = now_ms();
        let mut record = TaskRecord {
            id: new_task_id(),
            endpoint: req.endpoint,
            function_id,
            export: export.name().to_owned(),
            args: Vec::new(),
            limits: [limits.timeout_ms, limits.memory_bytes, limits.output_bytes],
            state: TaskState::WaitingForEndpoint as i32,
            history: vec![(TaskState::WaitingForEndpoint as i32, now)],
            result: None,
            error: None,
            requires: req.requires,
            deps: Vec::new(),
            pending_args: None,
            memo_key: None,
            cache_hit: false,
            retries: req.retries,
            retry_on: req.retry_on,
            attempts: 0,
        };
        let memoize = req.memoize || self.memoized(&record.function_id);
        let values: Vec<serde_json::Value> = match req.args {
            Some(submit_request::Args::Msgpack(bytes)) => {
                self.check_size(bytes.len())?;
                if !contains(&bytes, b"$task") {
                    let vals = export.args_from_msgpack(&bytes).map_err(host_status)?;
                    record.args = export.args_to_msgpack(&vals).map_err(host_status)?;
                    self.memo_lookup(&mut record, memoize)?;
                    return Ok(record);
                }
                rmp_serde::from_slice(&bytes).map_err(|e| {
                    Status::invalid_argument(format!(
                        "arguments with task references must be a MessagePack array of plain values: {e}"
                    ))
                })?
            }
            Some(submit_request::Args::Json(text)) => {
                self.check_size(text.len())?;
                serde_json::from_str(&text).map_err(|e| {
                    Status::invalid_argument(format!(
                        "arguments must be a JSON array, one value per parameter: {e}"
                    ))
                })?
            }
            None => Vec::new(),
        };
        let mut found = Vec::new();
        if values.len() == export.params().len() {
            for ((name, ty), v) in export.params().iter().zip(&values) {
                crate::deps::find(v, ty, &format!("argument `{name}`"), &mut found);
            }
        }
        if found.is_empty() {
            let vals = export.args_from_json(&values).map_err(host_status)?;
            record.args = export.args_to_msgpack(&vals).map_err(host_status)?;
            self.memo_lookup(&mut record, memoize)?;
            return Ok(record);
        }
        self.check_references(&mut record, values, found, batch)?;
        if memoize {
            // Keyed once the arguments are known.
            record.memo_key = Some(String::new());
        }
        Ok(record)
    }

    /// With memoization on, keys the task by its final arguments and, on a
    /// hit, finishes it at once from the memo.
    pub(crate) fn memo_lookup(&self, record: &mut TaskRecord, memoize: bool) -> Result<(), Status> {
        if !memoize {
            return Ok(());
        }
        let mut h = blake3::Hasher::new();
        h.update(record.function_id.as_bytes());
        h.update(&[0]);
        h.update(record.export.as_bytes());
        h.update(&[0]);
        h.update(&record.args);
        let key = h.finalize().to_hex().to_string();
        if let Some(result) = self.inner.store.memo(&key).map_err(internal)? {
            set_state(record, TaskState::Succeeded, now_ms());
            record.result = Some(result);
            record.cache_hit = true;
        }
        record.memo_key = Some(key);
        Ok(())
    }

    /// Checks that every reference names an existing task whose result fits
    /// where it stands, and makes `record` wait for them.
    fn check_references(
        &self,
        record: &mut TaskRecord,
        mut values: Vec<serde_json::Value>,
        found: Vec<crate::deps::Found>,
        batch: &[TaskRecord],
    ) -> Result<(), Status> {
        let in_batch = |r: &str| -> Result<Option<String>, Status> {
            let Some(i) = r.strip_prefix('#') else {
                return Ok(None);
            };
            let i: usize = i
                .parse()
                .map_err(|_| Status::invalid_argument(format!("`{r}` is not a task reference")))?;
            batch.get(i).map(|t| Some(t.id.clone())).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "reference `{r}`: a task may refer only to earlier tasks of its batch"
                ))
            })
        };
        let mut deps: Vec<String> = Vec::new();
        for r in &found {
            let id = in_batch(&r.id)?.unwrap_or_else(|| r.id.clone());
            let producer = match batch.iter().find(|t| t.id == id) {
                Some(t) => t.clone(),
                None => {
                    let known = self.sched().tasks.get(&id).cloned();
                    match known {
                        Some(t) => t,
                        None => self.inner.store.task(&id).map_err(internal)?.ok_or_else(|| {
                            Status::not_found(format!(
                                "{} refers to task {id}, which does not exist (a reference names a task submitted before)",
                                r.at
                            ))
                        })?,
                    }
                }
            };
            let pf = self.function(&producer.function_id)?;
            let pe = pf.export(&producer.export).map_err(host_status)?;
            let fed = crate::deps::fed_type(pe).map_err(|m| {
                Status::invalid_argument(format!("{} refers to task {id}, but {m}", r.at))
            })?;
            if !fed.fits(&r.want) {
                return Err(Status::invalid_argument(format!(
                    "{} expects {}, but task {id} (`{}`) gives {fed}",
                    r.at,
                    r.want,
                    pe.name()
                )));
            }
            if !deps.contains(&id) {
                deps.push(id);
            }
        }
        let rename = |r: &str| in_batch(r).ok().flatten();
        for v in &mut values {
            crate::deps::rename(v, &rename);
        }
        let now = record.history[0].1;
        record.state = TaskState::WaitingForDependencies as i32;
        record.history = vec![(TaskState::WaitingForDependencies as i32, now)];
        record.pending_args = Some(serde_json::Value::Array(values).to_string());
        record.deps = deps;
        Ok(())
    }

    fn check_size(&self, len: usize) -> Result<(), Status> {
        if len > self.inner.config.max_args_bytes {
            return Err(Status::resource_exhausted(format!(
                "arguments are {len} bytes, over the limit of {} bytes; pass large data as a blob",
                self.inner.config.max_args_bytes
            )));
        }
        Ok(())
    }

    /// Validates, stores durably, then queues and dispatches.
    fn accept(&self, reqs: Vec<pb::SubmitRequest>) -> Result<Vec<String>, Status> {
        let known = {
            let s = self.sched();
            Known {
                gpuless: s
                    .gpus
                    .iter()
                    .filter(|(_, g)| g.is_none())
                    .map(|(name, _)| name.clone())
                    .collect(),
                endpoints: s.known_endpoints.clone(),
                cameras: s.cameras.clone(),
            }
        };
        let mut records = Vec::with_capacity(reqs.len());
        let many = reqs.len() > 1;
        for (i, req) in reqs.into_iter().enumerate() {
            match self.prepare(req, &known, &records) {
                Ok(r) => records.push(r),
                Err(s) if many => {
                    return Err(Status::new(
                        s.code(),
                        format!("task {i} of the batch: {}", s.message()),
                    ));
                }
                Err(s) => return Err(s),
            }
        }
        self.inner.store.put_tasks(&records).map_err(internal)?;
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut waiting = Vec::new();
        {
            let mut s = self.sched();
            let mut endpoints = Vec::new();
            for r in records {
                if r.cache_hit {
                    *s.finished.entry(r.state).or_default() += 1;
                    continue;
                }
                if !r.deps.is_empty() {
                    s.wait_for(&r);
                    waiting.push(r.id.clone());
                    s.tasks.insert(r.id.clone(), r);
                    continue;
                }
                s.queues
                    .entry(r.endpoint.clone())
                    .or_default()
                    .push_back(r.id.clone());
                if !endpoints.contains(&r.endpoint) {
                    endpoints.push(r.endpoint.clone());
                }
                s.tasks.insert(r.id.clone(), r);
            }
            for e in endpoints {
                s.dispatch(&e);
            }
        }
        for id in waiting {
            self.check_dependencies(&id)?;
        }
        Ok(ids)
    }

    fn task_info(&self, id: &str) -> Result<pb::TaskInfo, Status> {
        if let Some(t) = self.sched().tasks.get(id) {
            return Ok(info(t));
        }
        match self.inner.store.task(id).map_err(internal)? {
            Some(t) => Ok(info(&t)),
            None => Err(Status::not_found(format!("unknown task `{id}`"))),
        }
    }

    /// Records outcomes: durable first, then visible to watchers. A failure
    /// its submission allows to retry goes back to the queue instead.
    fn finish(&self, sid: u64, outcomes: Vec<pb::TaskOutcome>) -> Result<(), Status> {
        let mut finals = Vec::with_capacity(outcomes.len());
        let mut retried = Vec::new();
        {
            let mut s = self.sched();
            if let Some(endpoint) = s.sessions.get(&sid).map(|x| x.endpoint.clone()) {
                *s.tasks_run.entry(endpoint).or_default() += outcomes.len() as u64;
            }
            for o in outcomes {
                if let Some(sess) = s.sessions.get_mut(&sid) {
                    sess.in_flight.remove(&o.task_id);
                }
                // First outcome wins; a late duplicate of a requeued task is dropped.
                let Some(task) = s.tasks.get(&o.task_id) else {
                    continue;
                };
                let mut rec = task.clone();
                set_state(&mut rec, TaskState::Running, o.started_at_ms);
                match o.outcome {
                    Some(pb::task_outcome::Outcome::Result(bytes)) => {
                        set_state(&mut rec, TaskState::Succeeded, o.finished_at_ms);
                        rec.result = Some(bytes);
                        rec.error = None;
                    }
                    Some(pb::task_outcome::Outcome::Error(e)) => {
                        let retry = rec.attempts < rec.retries
                            && rec.retry_on.iter().any(|k| k == "*" || *k == e.kind);
                        if retry {
                            rec.attempts += 1;
                            rec.error = Some((e.kind, e.message));
                            set_state(&mut rec, TaskState::WaitingForEndpoint, o.finished_at_ms);
                            retried.push(rec);
                            continue;
                        }
                        set_state(&mut rec, TaskState::Failed, o.finished_at_ms);
                        rec.error = Some((e.kind, e.message));
                    }
                    None => {
                        set_state(&mut rec, TaskState::Failed, o.finished_at_ms);
                        rec.error = Some((
                            "internal".into(),
                            "the endpoint sent an empty outcome".into(),
                        ));
                    }
                }
                finals.push(rec);
            }
        }
        for rec in &finals {
            if let (Some(key), Some(result)) = (&rec.memo_key, &rec.result)
                && rec.state == TaskState::Succeeded as i32
                && !key.is_empty()
            {
                self.inner.store.put_memo(key, result).map_err(internal)?;
            }
        }
        if !retried.is_empty() {
            self.inner.store.put_tasks(&retried).map_err(internal)?;
            let mut s = self.sched();
            let mut endpoints = Vec::new();
            for rec in retried {
                s.queues
                    .entry(rec.endpoint.clone())
                    .or_default()
                    .push_back(rec.id.clone());
                if !endpoints.contains(&rec.endpoint) {
                    endpoints.push(rec.endpoint.clone());
                }
                s.notify(&rec);
                s.tasks.insert(rec.id.clone(), rec);
            }
            for e in endpoints {
                s.dispatch(&e);
            }
        }
        self.inner.store.put_tasks(&finals).map_err(internal)?;
        let mut settled = Vec::new();
        {
            let mut s = self.sched();
            for rec in finals {
                if s.tasks.remove(&rec.id).is_some() {
                    *s.finished.entry(rec.state).or_default() += 1;
                    s.notify(&rec);
                    if s.dependents.contains_key(&rec.id) {
                        settled.push(rec);
                    }
                }
            }
        }
        self.settle(settled)
    }
}

#[tonic::async_trait]
impl functions_server::Functions for Service {
    async fn memoize(
        &self,
        req: Request<pb::MemoizeRequest>,
    ) -> Result<Response<pb::FunctionInfo>, Status> {
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

    async fn register(
        &self,
        req: Request<Streaming<pb::RegisterChunk>>,
    ) -> Result<Response<pb::FunctionInfo>, Status> {
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            Status::invalid_argument("empty upload: the first chunk must name the function id")
        })?;
        let id = first.id.trim().to_owned();
        FunctionId::parse(&id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let max = self.inner.config.max_component_bytes;
        if first.total_size > max {
            return Err(Status::resource_exhausted(format!(
                "component is {} bytes, over the limit of {max} bytes",
                first.total_size
            )));
        }
        let mut bytes = first.data;
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.data);
            if bytes.len() as u64 > max {
                return Err(Status::resource_exhausted(format!(
                    "component is over the limit of {max} bytes"
                )));
            }
        }
        if let Some(existing) = self.inner.store.function(&id).map_err(internal)? {
            return Ok(Response::new(function_info(&existing)));
        }
        let actual = FunctionId::of(&bytes).to_hex();
        if actual != id {
            return Err(Status::invalid_argument(format!(
                "hash mismatch: the upload claims to be `{id}` but its {} bytes hash to `{actual}`",
                bytes.len()
            )));
        }
        let f = self.inner.host.load(&bytes).map_err(host_status)?;
        let record = FunctionRecord {
            id: id.clone(),
            size: bytes.len() as u64,
            exports: f
                .exports()
                .iter()
                .map(|e| (e.name().to_owned(), e.signature().to_string()))
                .collect(),
            imports: f.imports().to_vec(),
            registered_at_ms: now_ms(),
            memoize: self.memoized(&id),
        };
        self.inner
            .store
            .put_function(&record, &bytes)
            .map_err(internal)?;
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
        _: Request<pb::ListFunctionsRequest>,
    ) -> Result<Response<pb::ListFunctionsResponse>, Status> {
        let mut functions: Vec<pb::FunctionInfo> = self
            .inner
            .store
            .functions()
            .map_err(internal)?
            .iter()
            .map(function_info)
            .collect();
        functions.sort_by_key(|f| f.registered_at_ms);
        Ok(Response::new(pb::ListFunctionsResponse { functions }))
    }
}

impl Service {
    fn memoized(&self, function_id: &str) -> bool {
        self.inner
            .memoized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(function_id)
    }
}

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
impl tasks_server::Tasks for Service {
    async fn clear_cache(
        &self,
        _req: Request<pb::ClearCacheRequest>,
    ) -> Result<Response<pb::ClearCacheResponse>, Status> {
        let removed = self.inner.store.clear_memo().map_err(internal)?;
        Ok(Response::new(pb::ClearCacheResponse { removed }))
    }

    async fn submit(
        &self,
        req: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let mut ids = self.accept(vec![req.into_inner()])?;
        Ok(Response::new(pb::SubmitResponse {
            task_id: ids.remove(0),
        }))
    }

    async fn submit_batch(
        &self,
        req: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        let task_ids = self.accept(req.into_inner().tasks)?;
        Ok(Response::new(pb::SubmitBatchResponse { task_ids }))
    }

    async fn get(
        &self,
        req: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        Ok(Response::new(self.task_info(&req.into_inner().task_id)?))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        let id = req.into_inner().task_id;
        let rec = {
            let mut s = self.sched();
            let Some(mut rec) = s.tasks.get(&id).cloned() else {
                drop(s);
                return Ok(Response::new(self.task_info(&id)?));
            };
            set_state(&mut rec, TaskState::Cancelled, now_ms());
            rec.error = Some(("cancelled".into(), "the task was cancelled".into()));
            for sess in s.sessions.values_mut() {
                if sess.in_flight.remove(&id) {
                    let _ = sess.outbox.send(Ok(ServiceMessage {
                        kind: Some(service_message::Kind::Cancel(CancelTasks {
                            task_ids: vec![id.clone()],
                        })),
                    }));
                }
            }
            rec
        };
        self.conclude(&rec)?;
        self.settle(vec![rec.clone()])?;
        Ok(Response::new(info(&rec)))
    }

    type WatchStream = BoxStream<pb::TaskEvent>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let wid = {
            let mut s = self.sched();
            let wid = s.fresh_id();
            s.watch_txs.insert(wid, tx.clone());
            wid
        };
        let service = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                for id in req.task_ids {
                    let mut s = service.sched();
                    if s.tasks.contains_key(&id) {
                        s.watchers.entry(id).or_default().push(wid);
                        continue;
                    }
                    drop(s);
                    // Finished (stored before it left memory) or unknown.
                    let event = match service.inner.store.task(&id) {
                        Ok(Some(t)) => Ok(pb::TaskEvent {
                            task: Some(info(&t)),
                        }),
                        Ok(None) => Ok(pb::TaskEvent {
                            task: Some(pb::TaskInfo {
                                id: id.clone(),
                                error: Some(pb::TaskError {
                                    kind: "unknown-task".into(),
                                    message: format!("unknown task `{id}`"),
                                }),
                                ..Default::default()
                            }),
                        }),
                        Err(e) => Err(internal(e)),
                    };
                    if tx.send(event).is_err() {
                        break;
                    }
                }
            }
            service.sched().watch_txs.remove(&wid);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.sched();
        let mut names: Vec<String> = s.known_endpoints.iter().cloned().collect();
        names.sort();
        let endpoints = names
            .into_iter()
            .map(|name| {
                let sessions: Vec<&Session> =
                    s.sessions.values().filter(|x| x.endpoint == name).collect();
                pb::EndpointStatus {
                    sessions: sessions.len() as u32,
                    capacity: sessions.iter().map(|x| x.capacity).sum(),
                    in_flight: sessions.iter().map(|x| x.in_flight.len() as u32).sum(),
                    queued: s.queues.get(&name).map_or(0, |q| {
                        q.iter().filter(|id| s.tasks.contains_key(*id)).count()
                    }) as u64,
                    last_heartbeat_ms: sessions
                        .iter()
                        .map(|x| x.last_seen_ms)
                        .max()
                        .or_else(|| s.last_heartbeat.get(&name).copied())
                        .unwrap_or(0),
                    online: !sessions.is_empty(),
                    gpu: s.gpus.get(&name).cloned().flatten(),
                    cameras: s.cameras.get(&name).cloned().unwrap_or_default(),
                    tasks_run: s.tasks_run.get(&name).copied().unwrap_or(0),
                    name,
                }
            })
            .collect();
        let mut counts: HashMap<i32, u64> = s.finished.clone();
        for t in s.tasks.values() {
            *counts.entry(t.state).or_default() += 1;
        }
        let mut tasks: Vec<pb::StateCount> = counts
            .into_iter()
            .map(|(state, count)| pb::StateCount { state, count })
            .collect();
        tasks.sort_by_key(|c| c.state);
        Ok(Response::new(pb::StatusResponse { endpoints, tasks }))
    }
}

#[tonic::async_trait]
impl endpoints_server::Endpoints for Service {
    type SessionStream = BoxStream<ServiceMessage>;

    async fn session(
        &self,
        req: Request<Streaming<pb::EndpointMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
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
        let name = hello.name.trim().to_owned();
        if name.is_empty() {
            return Err(Status::invalid_argument("an endpoint needs a name"));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let sid = {
            let mut s = self.sched();
            s.gpus.insert(name.clone(), hello.gpu.clone());
            s.cameras.insert(name.clone(), hello.cameras.clone());
            let sid = s.fresh_id();
            s.sessions.insert(
                sid,
                Session {
                    endpoint: name.clone(),
                    outbox: tx.clone(),
                    credits: 0,
                    capacity: hello.concurrency,
                    in_flight: Default::default(),
                    last_seen: Instant::now(),
                    last_seen_ms: now_ms(),
                },
            );
            sid
        };
        if self.sched().known_endpoints.insert(name.clone()) {
            self.inner.store.put_endpoint(&name).map_err(internal)?;
        }
        let _ = tx.send(Ok(ServiceMessage {
            kind: Some(service_message::Kind::Welcome(Welcome {
                session_id: sid.to_string(),
            })),
        }));
        let service = self.clone();
        tokio::spawn(async move {
            // Everything that has already arrived is handled together: one
            // durable commit for all the results in it (group commit).
            let mut chunks = incoming.ready_chunks(1024);
            while let Some(chunk) = chunks.next().await {
                let mut credits = 0u32;
                let mut outcomes = Vec::new();
                let mut broken = false;
                for msg in chunk {
                    match msg.map(|m| m.kind) {
                        Ok(Some(endpoint_message::Kind::Credits(n))) => {
                            credits = credits.saturating_add(n)
                        }
                        Ok(Some(endpoint_message::Kind::Results(batch))) => {
                            outcomes.extend(batch.outcomes)
                        }
                        Ok(_) => {}
                        Err(_) => broken = true,
                    }
                }
                {
                    let mut s = service.sched();
                    if let Some(sess) = s.sessions.get_mut(&sid) {
                        sess.last_seen = Instant::now();
                        sess.last_seen_ms = now_ms();
                    }
                }
                if !outcomes.is_empty() {
                    let svc = service.clone();
                    let recorded =
                        tokio::task::spawn_blocking(move || svc.finish(sid, outcomes)).await;
                    if let Ok(Err(e)) = recorded {
                        eprintln!("ferry-service: recording results failed: {e}");
                    }
                }
                if credits > 0 {
                    let mut s = service.sched();
                    if let Some(sess) = s.sessions.get_mut(&sid) {
                        sess.credits = sess.credits.saturating_add(credits);
                        s.dispatch(&name);
                    }
                }
                if broken {
                    break;
                }
            }
            let mut s = service.sched();
            s.last_heartbeat.insert(name.clone(), now_ms());
            if s.drop_session(sid).is_some() {
                s.dispatch(&name);
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    type FetchComponentStream = BoxStream<pb::ComponentChunk>;

    async fn fetch_component(
        &self,
        req: Request<pb::FetchComponentRequest>,
    ) -> Result<Response<Self::FetchComponentStream>, Status> {
        let id = req.into_inner().id;
        let bytes = self
            .inner
            .store
            .function_bytes(&id)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("unknown function `{id}`")))?;
        let chunks: Vec<Result<pb::ComponentChunk, Status>> = bytes
            .chunks(CHUNK)
            .map(|c| Ok(pb::ComponentChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }
}

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
        let mut chunks = req.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty blob upload"))?;
        let hash = crate::blobs::parse_hash(&first.hash)?;
        let size = first.size;
        let rest = chunks.map(|c| c.map(|c| c.data));
        self.inner.blobs.put(hash, size, first.data, rest).await?;
        Ok(Response::new(self.blob_info(&hash)?))
    }

    type GetStream = BoxStream<pb::BlobChunk>;

    async fn get(
        &self,
        req: Request<pb::GetBlobRequest>,
    ) -> Result<Response<Self::GetStream>, Status> {
        let hash = crate::blobs::parse_hash(&req.get_ref().hash)?;
        let path = self.inner.blobs.path(&hash);
        let mut file = std::fs::File::open(&path)
            .map_err(|_| Status::not_found(format!("unknown blob {hash}")))?;
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
                            tx.blocking_send(Err(Status::internal(format!("reading blob: {e}"))));
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
        let req = req.into_inner();
        let hash = crate::blobs::parse_hash(&req.hash)?;
        if !req.unpin && self.inner.blobs.stat(&hash).is_none() {
            return Err(Status::not_found(format!("unknown blob {hash}")));
        }
        self.inner
            .store
            .pin_blob(&hash.to_hex(), !req.unpin)
            .map_err(internal)?;
        Ok(Response::new(self.blob_info(&hash)?))
    }

    async fn gc(&self, req: Request<pb::GcRequest>) -> Result<Response<pb::GcReport>, Status> {
        let req = req.into_inner();
        let service = self.clone();
        let report = tokio::task::spawn_blocking(move || {
            let inner = &service.inner;
            let mut named = std::collections::HashSet::new();
            for t in inner.store.tasks().map_err(internal)? {
                crate::blobs::named_blobs(&t.args, &mut named);
                if let Some(r) = &t.result {
                    crate::blobs::named_blobs(r, &mut named);
                }
            }
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
                .map_err(|e| Status::internal(format!("blob store: {e}")))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
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

pub(crate) async fn serve(
    service: Service,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    const MAX: usize = 64 << 20;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<functions_server::FunctionsServer<Service>>()
        .await;
    health
        .set_serving::<tasks_server::TasksServer<Service>>()
        .await;
    health
        .set_serving::<endpoints_server::EndpointsServer<Service>>()
        .await;
    health
        .set_serving::<blobs_server::BlobsServer<Service>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // `Server::tcp_nodelay` only covers sockets tonic binds itself; without
    // it, small replies wait on delayed ACKs (~40 ms each).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .initial_stream_window_size(ferry_proto::STREAM_WINDOW)
        .initial_connection_window_size(ferry_proto::CONNECTION_WINDOW)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            functions_server::FunctionsServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
        )
        .add_service(
            tasks_server::TasksServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
        )
        .add_service(
            endpoints_server::EndpointsServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
        )
        .add_service(
            blobs_server::BlobsServer::new(service)
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
        )
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    let mut server = tokio::spawn(server);
    tokio::select! {
        r = &mut server => return Ok(r??),
        () = shutdown => {}
    }
    let _ = stop.send(());
    // Endpoint sessions and watch streams never end by themselves: give them
    // a moment to drain, then stop regardless.
    match tokio::time::timeout(std::time::Duration::from_secs(1), &mut server).await {
        Ok(r) => Ok(r??),
        Err(_) => {
            server.abort();
            Ok(())
        }
    }
}
