//! `ferry-endpoint`: the agent that runs tasks.
//!
//! It dials the service (it never listens), holds one stream, advertises free
//! slots as credits, fetches unseen components by hash and verifies them,
//! compiles each once into the on-disk cache, runs tasks on `ferry-host` and
//! streams results back in batches. A broken stream is redialled with backoff;
//! the service has already requeued whatever was in flight.

#[cfg(feature = "cli")]
mod args;
mod blobs;
mod cameras;
#[cfg(feature = "cli")]
mod logging;

#[cfg(feature = "cli")]
pub use args::StartArgs;
pub use cameras::{CameraConfig, Source as CameraSource};
#[cfg(feature = "cli")]
pub use logging::init_logging;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ferry_host::{
    CallOptions, FailureKind, Function, FunctionId, GpuChoice, Host, HostConfig, Limits, Mount,
};
use ferry_proto::now_ms;
use ferry_proto::v1::{
    Assignment, EndpointMessage, FetchComponentRequest, Heartbeat, Hello, ResultBatch, TaskError,
    TaskOutcome, endpoint_message, endpoints_client::EndpointsClient, service_message,
    task_outcome,
};
use futures::FutureExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

/// An endpoint's configuration (the TOML file of `ferry endpoint start --config`).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub service: String,
    /// Tasks run at once (default: the number of cores).
    pub concurrency: u32,
    /// Tasks held ready beyond those running (default: `concurrency`): the
    /// credits advertised are `concurrency + prefetch`, so that the next task
    /// is here when a slot frees.
    pub prefetch: Option<u32>,
    /// Limits for tasks whose submission sets none.
    pub limits: Limits,
    /// The most a submission may ask for; a task that asks for more fails
    /// with `invalid-limits`, naming the ceiling.
    pub max_limits: MaxLimits,
    /// Compiled components (`<blake3>.<engine>.cwasm`).
    pub cache_dir: Option<PathBuf>,
    pub heartbeat: Duration,
    /// The GPU lent to tasks: `auto` (default), `none`, or part of an
    /// adapter's name.
    pub gpu: GpuChoice,
    /// Host directories lent to tasks, each to the functions it names.
    pub mounts: Vec<Grant>,
    /// Where each task's private `/scratch` is made (and removed after).
    pub scratch_dir: PathBuf,
    /// Most bytes the blob cache (`<cache_dir>/blobs`) may hold; the least
    /// recently used blobs make room for new ones.
    pub blob_cache: u64,
    /// The service's blob store, when this endpoint can read it (the same
    /// machine, or a shared filesystem): blobs there are used in place.
    pub shared_blob_store: Option<PathBuf>,
    /// Cameras, each with one broker owning the device, lent to the
    /// functions its grant names.
    pub cameras: Vec<CameraConfig>,
}

/// Ceilings on what a submission may ask of this endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxLimits {
    pub timeout: Duration,
    pub memory: u64,
    pub output: u64,
}

impl Default for MaxLimits {
    fn default() -> Self {
        MaxLimits {
            timeout: Duration::from_secs(24 * 3600),
            memory: 4 << 30,
            output: 1 << 30,
        }
    }
}

/// A directory lent to some functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub mount: Mount,
    /// Function ids (blake3 hex) that see the mount; `*` for every function.
    pub functions: Vec<String>,
}

impl Grant {
    fn covers(&self, function_id: &str) -> bool {
        self.functions.iter().any(|f| f == "*" || f == function_id)
    }
}

impl EndpointConfig {
    pub fn new(name: impl Into<String>, service: impl Into<String>) -> Self {
        EndpointConfig {
            name: name.into(),
            service: service.into(),
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
            prefetch: None,
            limits: Limits::default(),
            max_limits: MaxLimits::default(),
            cache_dir: None,
            heartbeat: Duration::from_secs(2),
            gpu: GpuChoice::Auto,
            mounts: Vec::new(),
            scratch_dir: std::env::temp_dir().join("ferry-scratch"),
            blob_cache: 32 << 30,
            shared_blob_store: None,
            cameras: Vec::new(),
        }
    }

    /// Reads a TOML config; keys: `name`, `service`, `concurrency`,
    /// `cache_dir`, `heartbeat`, `gpu` (`"auto"`, `"none"` or part of an
    /// adapter's name), `scratch_dir`, `blob_cache` (e.g. `"32GiB"`),
    /// `shared_blob_store` (the service's `<data_dir>/blobs`, if readable here),
    /// `[limits]` with `timeout`, `memory`, `output`, `gpu_buffer`,
    /// `gpu_memory`, `blob_output` (e.g. `"5s"`, `"64MiB"`), `[[cameras]]`
    /// with `name`, `backend` (`v4l2`, `test-pattern`, `replay`), `device`
    /// (v4l2), `dir` (replay), `width`, `height`, `fps`, `open` (`start` or
    /// `first-use`) and `functions`, and
    /// `[[mounts]]` with `host`, `guest`, `read_only` (default true) and
    /// `functions` (ids, or `"*"`).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: String,
            service: Option<String>,
            concurrency: Option<u32>,
            prefetch: Option<u32>,
            cache_dir: Option<PathBuf>,
            heartbeat: Option<String>,
            gpu: Option<String>,
            scratch_dir: Option<PathBuf>,
            blob_cache: Option<String>,
            shared_blob_store: Option<PathBuf>,
            limits: Option<FileLimits>,
            max_limits: Option<FileMaxLimits>,
            #[serde(default)]
            mounts: Vec<FileMount>,
            #[serde(default)]
            cameras: Vec<FileCamera>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileCamera {
            name: String,
            backend: String,
            device: Option<PathBuf>,
            dir: Option<PathBuf>,
            width: Option<u32>,
            height: Option<u32>,
            fps: Option<f32>,
            open: Option<String>,
            functions: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileMount {
            host: PathBuf,
            guest: String,
            read_only: Option<bool>,
            functions: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileMaxLimits {
            timeout: Option<String>,
            memory: Option<String>,
            output: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileLimits {
            timeout: Option<String>,
            memory: Option<String>,
            output: Option<String>,
            gpu_buffer: Option<String>,
            gpu_memory: Option<String>,
            blob_output: Option<String>,
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: File = toml::from_str(&text)
            .with_context(|| format!("in endpoint config {}", path.display()))?;
        let mut c = EndpointConfig::new(
            f.name,
            f.service.unwrap_or_else(|| "http://127.0.0.1:7171".into()),
        );
        if let Some(n) = f.concurrency {
            anyhow::ensure!(n > 0, "concurrency must be at least 1");
            c.concurrency = n;
        }
        c.prefetch = f.prefetch;
        c.cache_dir = f.cache_dir;
        if let Some(g) = f.gpu {
            c.gpu = g.parse()?;
        }
        if let Some(d) = f.scratch_dir {
            c.scratch_dir = d;
        }
        if let Some(b) = f.blob_cache {
            c.blob_cache = ferry_host::parse_bytes(&b)?;
        }
        c.shared_blob_store = f.shared_blob_store;
        for m in f.mounts {
            anyhow::ensure!(
                !m.functions.is_empty(),
                "mount {} names no functions (use [\"*\"] for all)",
                m.guest
            );
            let mount = Mount {
                host: m.host,
                guest: m.guest,
                read_only: m.read_only.unwrap_or(true),
            };
            mount.validate()?;
            c.mounts.push(Grant {
                mount,
                functions: m.functions,
            });
        }
        for cam in f.cameras {
            let what = |m: &str| format!("camera {}: {m}", cam.name);
            anyhow::ensure!(
                !cam.functions.is_empty(),
                what("names no functions (use [\"*\"] for all)")
            );
            anyhow::ensure!(
                !c.cameras.iter().any(|o| o.name == cam.name),
                what("is named twice")
            );
            let source = match cam.backend.as_str() {
                "test-pattern" => CameraSource::TestPattern,
                "replay" => {
                    CameraSource::Replay(cam.dir.with_context(|| what("replay needs dir"))?)
                }
                "v4l2" => {
                    CameraSource::V4l2(cam.device.unwrap_or_else(|| PathBuf::from("/dev/video0")))
                }
                other => anyhow::bail!(what(&format!(
                    "unknown backend `{other}` (v4l2, test-pattern or replay)"
                ))),
            };
            let size = match (cam.width, cam.height) {
                (Some(w), Some(h)) => Some((w, h)),
                (None, None) => None,
                _ => anyhow::bail!(what("give both width and height, or neither")),
            };
            let fps = cam.fps.unwrap_or(30.0);
            anyhow::ensure!(
                fps > 0.0 && fps <= 1000.0,
                what("fps must be above 0 and at most 1000")
            );
            let open = match cam.open.as_deref() {
                None | Some("start") => ferry_host::OpenAt::Start,
                Some("first-use") => ferry_host::OpenAt::FirstUse,
                Some(other) => anyhow::bail!(what(&format!(
                    "open = `{other}`: use \"start\" or \"first-use\""
                ))),
            };
            c.cameras.push(CameraConfig {
                name: cam.name,
                source,
                size,
                fps,
                open,
                functions: cam.functions,
            });
        }
        if let Some(h) = f.heartbeat {
            c.heartbeat = ferry_host::parse_duration(&h)?;
        }
        if let Some(m) = f.max_limits {
            if let Some(t) = m.timeout {
                c.max_limits.timeout = ferry_host::parse_duration(&t)?;
            }
            if let Some(b) = m.memory {
                c.max_limits.memory = ferry_host::parse_bytes(&b)?;
            }
            if let Some(b) = m.output {
                c.max_limits.output = ferry_host::parse_bytes(&b)?;
            }
        }
        if let Some(l) = f.limits {
            if let Some(t) = l.timeout {
                c.limits.timeout = ferry_host::parse_duration(&t)?;
            }
            if let Some(m) = l.memory {
                c.limits.memory = ferry_host::parse_bytes(&m)?;
            }
            if let Some(o) = l.output {
                c.limits.output = ferry_host::parse_bytes(&o)?;
            }
            if let Some(b) = l.gpu_buffer {
                c.limits.gpu_buffer = ferry_host::parse_bytes(&b)?;
            }
            if let Some(m) = l.gpu_memory {
                c.limits.gpu_memory = ferry_host::parse_bytes(&m)?;
            }
            if let Some(b) = l.blob_output {
                c.limits.blob_output = ferry_host::parse_bytes(&b)?;
            }
        }
        Ok(c)
    }
}

/// Runs the endpoint until `shutdown` resolves, redialling as needed.
pub async fn run(
    config: EndpointConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let host = Host::new(HostConfig {
        cache_dir: config.cache_dir.clone(),
        max_instances: (config.concurrency * 2).max(16),
        gpu: config.gpu.clone(),
        name: config.name.clone(),
        ..HostConfig::default()
    })?;
    let name = &config.name;
    match host.gpu() {
        Some(gpu) => tracing::info!(endpoint = %name, "GPU {}", gpu.info()),
        None if config.gpu == GpuChoice::None => {
            tracing::info!(endpoint = %name, "GPU disabled (gpu = \"none\")")
        }
        None => tracing::warn!(
            endpoint = %name,
            "no GPU adapter found; running CPU-only (tasks that need a GPU fail)"
        ),
    }
    let blob_dir = config
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ferry-{}", config.name)))
        .join("blobs");
    let blobs = Arc::new(blobs::FetchedBlobs::new(
        &config.service,
        blob_dir,
        config.blob_cache,
        config.shared_blob_store.clone(),
    )?);
    let mut cameras = Vec::new();
    for cam in &config.cameras {
        let camera = cam.start()?;
        tracing::info!(endpoint = %config.name, "camera {} ({})", cam.name, camera.description());
        cameras.push((camera, cam.clone()));
    }
    let agent = Arc::new(Agent {
        cameras,
        blobs,
        workers: Arc::new(tokio::sync::Semaphore::new(config.concurrency as usize)),
        config,
        host,
        fetching: tokio::sync::Mutex::new(()),
        abort_on: std::env::var("FERRY_TEST_ABORT_ON_EXPORT").ok(),
    });
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = agent.clone().session() => {
                match r {
                    Ok(()) => {
                        tracing::info!(endpoint = %agent.config.name, "the service closed the session; redialling");
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => tracing::warn!(endpoint = %agent.config.name, "{e:#}; retrying in {backoff:?}"),
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

struct Agent {
    /// Each camera's broker, with its grant.
    cameras: Vec<(Arc<ferry_host::Camera>, CameraConfig)>,
    blobs: Arc<blobs::FetchedBlobs>,
    /// One permit per task allowed to run at once.
    workers: Arc<tokio::sync::Semaphore>,
    config: EndpointConfig,
    host: Host,
    fetching: tokio::sync::Mutex<()>,
    /// Fault injection for tests: the process aborts when it is handed a
    /// task of this export (`FERRY_TEST_ABORT_ON_EXPORT`), as a host crash
    /// would take it down.
    abort_on: Option<String>,
}

type Running = Arc<Mutex<HashMap<String, JoinHandle<()>>>>;

impl Agent {
    async fn session(self: Arc<Self>) -> anyhow::Result<()> {
        let channel = ferry_proto::dial(&self.config.service)
            .with_context(|| format!("bad service URL `{}`", self.config.service))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach the service at {}", self.config.service))?;
        let mut client = EndpointsClient::new(channel).max_decoding_message_size(64 << 20);
        let (out, out_rx) = mpsc::channel::<EndpointMessage>(1024);
        let send = |kind| EndpointMessage { kind: Some(kind) };
        out.send(send(endpoint_message::Kind::Hello(Hello {
            name: self.config.name.clone(),
            concurrency: self.config.concurrency,
            version: env!("CARGO_PKG_VERSION").into(),
            gpu: self.host.gpu().map(|g| {
                let i = g.info();
                ferry_proto::v1::GpuInfo {
                    name: i.name.clone(),
                    backend: i.backend.clone(),
                    device_type: i.device_type.clone(),
                    driver: i.driver.clone(),
                }
            }),
            cameras: self
                .cameras
                .iter()
                .map(|(cam, c)| ferry_proto::v1::CameraInfo {
                    name: c.name.clone(),
                    backend: cam.description().to_owned(),
                    functions: c.functions.clone(),
                })
                .collect(),
        })))
        .await?;
        let credits =
            self.config.concurrency + self.config.prefetch.unwrap_or(self.config.concurrency);
        out.send(send(endpoint_message::Kind::Credits(credits)))
            .await?;
        let mut incoming = client
            .session(ReceiverStream::new(out_rx))
            .await?
            .into_inner();

        let running: Running = Arc::default();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<TaskOutcome>();
        // Results go up in batches: whatever finished while the last batch was sent.
        let results_out = out.clone();
        let batcher = tokio::spawn(async move {
            while let Some(first) = done_rx.recv().await {
                let mut outcomes = vec![first];
                while outcomes.len() < 1024 {
                    match done_rx.try_recv() {
                        Ok(o) => outcomes.push(o),
                        Err(_) => break,
                    }
                }
                let n = outcomes.len() as u32;
                let results = send(endpoint_message::Kind::Results(ResultBatch { outcomes }));
                if results_out.send(results).await.is_err()
                    || results_out
                        .send(send(endpoint_message::Kind::Credits(n)))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        let beat_out = out.clone();
        let period = self.config.heartbeat;
        let held = running.clone();
        // Each heartbeat lists every task held here, renewing their leases.
        let heart = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let at_ms = now_ms();
                let holding = held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                if beat_out
                    .send(send(endpoint_message::Kind::Heartbeat(Heartbeat {
                        at_ms,
                        holding,
                    })))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });

        let result = loop {
            let msg = match incoming.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break Ok(()),
                Err(e) => break Err(anyhow::Error::from(e).context("the session stream broke")),
            };
            match msg.kind {
                Some(service_message::Kind::Welcome(w)) => {
                    tracing::info!(endpoint = %self.config.name, session = %w.session_id, "connected");
                }
                Some(service_message::Kind::Tasks(batch)) => {
                    for a in batch.tasks {
                        if self.abort_on.as_deref() == Some(a.export.as_str()) {
                            tracing::error!(task = %a.task_id, "FERRY_TEST_ABORT_ON_EXPORT: aborting the process");
                            std::process::abort();
                        }
                        let id = a.task_id.clone();
                        let agent = self.clone();
                        let done = done_tx.clone();
                        let running2 = running.clone();
                        // Held across the spawn, so that a task that ends at once
                        // cannot remove itself before it is listed (a stale entry
                        // would be reported in heartbeats and freed twice).
                        let mut held = running.lock().unwrap_or_else(|p| p.into_inner());
                        let handle = tokio::spawn(async move {
                            let Ok(_permit) = agent.workers.clone().acquire_owned().await else {
                                return;
                            };
                            let (task_id, lease) = (a.task_id.clone(), a.lease);
                            // A panic in the runner is the task's failure, never a
                            // silent loss of its slot.
                            let outcome = match AssertUnwindSafe(agent.run_task(a))
                                .catch_unwind()
                                .await
                            {
                                Ok(o) => o,
                                Err(_) => {
                                    tracing::error!(task = %task_id, "the task's runner panicked");
                                    TaskOutcome {
                                        task_id,
                                        lease,
                                        outcome: Some(task_outcome::Outcome::Error(TaskError {
                                            kind: FailureKind::Internal.into(),
                                            message: "the endpoint failed while running the task"
                                                .into(),
                                        })),
                                        started_at_ms: now_ms(),
                                        finished_at_ms: now_ms(),
                                        output: None,
                                    }
                                }
                            };
                            running2
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&outcome.task_id);
                            let _ = done.send(outcome);
                        });
                        held.insert(id, handle);
                    }
                }
                Some(service_message::Kind::Cancel(c)) => {
                    let mut freed = 0;
                    for id in c.task_ids {
                        if let Some(h) = running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id)
                        {
                            h.abort();
                            freed += 1;
                        }
                    }
                    if freed > 0 {
                        let _ = out.send(send(endpoint_message::Kind::Credits(freed))).await;
                    }
                }
                Some(service_message::Kind::Heartbeat(_)) | None => {}
            }
        };
        heart.abort();
        batcher.abort();
        // The service requeues what was in flight; stop working on it here.
        for (_, h) in running.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            h.abort();
        }
        result
    }

    async fn run_task(&self, a: Assignment) -> TaskOutcome {
        let started_at_ms = now_ms();
        let mut output = None;
        let outcome = match self.call(&a, &mut output).await {
            Ok(bytes) => task_outcome::Outcome::Result(bytes),
            Err(e) => task_outcome::Outcome::Error(e),
        };
        TaskOutcome {
            task_id: a.task_id,
            lease: a.lease,
            outcome: Some(outcome),
            started_at_ms,
            finished_at_ms: now_ms(),
            output,
        }
    }

    /// The submission's limits over the endpoint's defaults, refused past
    /// the endpoint's ceilings.
    fn limits(&self, asked: Option<&ferry_proto::v1::Limits>) -> Result<Limits, ferry_host::Error> {
        let mut limits = self.config.limits.clone();
        let max = &self.config.max_limits;
        let Some(l) = asked else {
            return Ok(limits);
        };
        let over = |what: &str, asked: String, most: String| {
            ferry_host::Error::InvalidLimits(format!(
                "the task asks for {what} {asked}; endpoint {} allows at most {most}",
                self.config.name
            ))
        };
        if l.timeout_ms > 0 {
            let t = Duration::from_millis(l.timeout_ms);
            if t > max.timeout {
                return Err(over(
                    "a timeout of",
                    format!("{t:?}"),
                    format!("{:?}", max.timeout),
                ));
            }
            limits.timeout = t;
        }
        if l.memory_bytes > 0 {
            if l.memory_bytes > max.memory {
                return Err(over(
                    "memory",
                    format!("{} bytes", l.memory_bytes),
                    format!("{} bytes", max.memory),
                ));
            }
            limits.memory = l.memory_bytes;
        }
        if l.output_bytes > 0 {
            if l.output_bytes > max.output {
                return Err(over(
                    "output",
                    format!("{} bytes", l.output_bytes),
                    format!("{} bytes", max.output),
                ));
            }
            limits.output = l.output_bytes;
        }
        Ok(limits)
    }

    async fn call(
        &self,
        a: &Assignment,
        output: &mut Option<ferry_proto::v1::TaskOutput>,
    ) -> Result<Vec<u8>, TaskError> {
        let err = |e: ferry_host::Error| TaskError {
            kind: e.kind().into(),
            message: e.to_string(),
        };
        for need in &a.requires {
            match need.as_str() {
                "gpu" if self.host.gpu().is_none() => {
                    return Err(err(ferry_host::Error::NoGpu {
                        endpoint: self.config.name.clone(),
                    }));
                }
                "gpu" => {}
                need if need == "camera" || need.starts_with("camera:") => {
                    let name = need.strip_prefix("camera:");
                    let ours = |c: &&(Arc<ferry_host::Camera>, CameraConfig)| {
                        name.is_none_or(|n| c.1.name == n)
                    };
                    let refuse = |message: String| TaskError {
                        kind: FailureKind::NoCamera.into(),
                        message,
                    };
                    let endpoint = &self.config.name;
                    if !self.cameras.iter().any(|c| ours(&c)) {
                        return Err(refuse(match name {
                            Some(n) => format!("endpoint {endpoint} has no camera named {n}"),
                            None => format!("endpoint {endpoint} has no camera"),
                        }));
                    }
                    if !self
                        .cameras
                        .iter()
                        .filter(ours)
                        .any(|c| c.1.covers(&a.function_id))
                    {
                        return Err(refuse(match name {
                            Some(n) => format!(
                                "camera {n} on endpoint {endpoint} is not granted to function {}",
                                a.function_id
                            ),
                            None => format!(
                                "endpoint {endpoint} grants function {} no camera",
                                a.function_id
                            ),
                        }));
                    }
                }
                need if need.starts_with("mount:") => {
                    let guest = &need["mount:".len()..];
                    let mounts: Vec<_> = self
                        .config
                        .mounts
                        .iter()
                        .filter(|g| g.mount.guest == guest)
                        .collect();
                    if mounts.is_empty() {
                        return Err(TaskError {
                            kind: FailureKind::BadMount.into(),
                            message: format!(
                                "endpoint {} has no mount at {guest}",
                                self.config.name
                            ),
                        });
                    }
                    if !mounts.iter().any(|g| g.covers(&a.function_id)) {
                        return Err(TaskError {
                            kind: FailureKind::BadMount.into(),
                            message: format!(
                                "mount {guest} on endpoint {} is not granted to function {}",
                                self.config.name, a.function_id
                            ),
                        });
                    }
                }
                other => {
                    return Err(TaskError {
                        kind: FailureKind::UnsupportedRequirement.into(),
                        message: format!("endpoint {} cannot provide `{other}`", self.config.name),
                    });
                }
            }
        }
        let f = self.function(&a.function_id).await?;
        let export = f.export(&a.export).map_err(err)?;
        let args = export.args_from_msgpack(&a.args).map_err(err)?;
        let limits = self.limits(a.limits.as_ref()).map_err(err)?;
        let options = CallOptions {
            mounts: self
                .config
                .mounts
                .iter()
                .filter(|g| g.covers(&a.function_id))
                .map(|g| g.mount.clone())
                .collect(),
            scratch: Some(self.config.scratch_dir.clone()),
            blobs: Some(self.blobs.clone()),
            cameras: self
                .cameras
                .iter()
                .filter(|(_, c)| c.covers(&a.function_id))
                .map(|(cam, _)| cam.clone())
                .collect(),
            cameras_withheld: self
                .cameras
                .iter()
                .filter(|(_, c)| !c.covers(&a.function_id))
                .map(|(_, c)| c.name.clone())
                .collect(),
            ..CallOptions::default()
        };
        let captured = |stdout: &ferry_host::Captured,
                        stderr: &ferry_host::Captured,
                        logs: &[ferry_host::LogEvent],
                        logs_dropped: u64| ferry_proto::v1::TaskOutput {
            stdout: stdout.bytes.clone(),
            stderr: stderr.bytes.clone(),
            logs: logs.iter().map(|e| e.to_string()).collect(),
            truncated: stdout.dropped + stderr.dropped + logs_dropped,
        };
        let out = match self
            .host
            .call_keeping_output(&f, export, &args, &limits, &options)
            .await
        {
            Ok(out) => out,
            Err(failed) => {
                // What a failed task printed and logged is what its user
                // most needs to see.
                let o = &failed.output;
                *output = Some(captured(&o.stdout, &o.stderr, &o.logs, o.logs_dropped));
                return Err(err(failed.error));
            }
        };
        *output = Some(captured(
            &out.stdout,
            &out.stderr,
            &out.logs,
            out.logs_dropped,
        ));
        // New blobs reach the service before the result that names them.
        for blob in &out.blobs {
            self.blobs.send(blob).await.map_err(|e| TaskError {
                kind: FailureKind::BlobUpload.into(),
                message: format!("sending new blob {} to the service: {e:#}", blob.hash),
            })?;
        }
        export.result_to_msgpack(out.result.as_ref()).map_err(err)
    }

    /// The compiled function: from memory, the on-disk cache, or fetched by
    /// hash from the service and verified.
    async fn function(&self, id: &str) -> Result<Arc<Function>, TaskError> {
        let fail = |kind: FailureKind, message: String| TaskError {
            kind: kind.into(),
            message,
        };
        let fid =
            FunctionId::parse(id).map_err(|e| fail(FailureKind::BadComponent, e.to_string()))?;
        if let Some(f) = self
            .host
            .cached(fid)
            .map_err(|e| fail(e.kind(), e.to_string()))?
        {
            return Ok(f);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(f) = self
            .host
            .cached(fid)
            .map_err(|e| fail(e.kind(), e.to_string()))?
        {
            return Ok(f);
        }
        let bytes = self
            .fetch(id)
            .await
            .map_err(|e| fail(FailureKind::Fetch, format!("fetching function {id}: {e:#}")))?;
        let actual = FunctionId::of(&bytes);
        if actual != fid {
            return Err(fail(
                FailureKind::HashMismatch,
                format!("fetched bytes for {id} hash to {actual}; refusing to run them"),
            ));
        }
        self.host
            .load(&bytes)
            .map_err(|e| fail(e.kind(), e.to_string()))
    }

    async fn fetch(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        let mut client = EndpointsClient::connect(self.config.service.clone())
            .await?
            .max_decoding_message_size(64 << 20);
        let mut stream = client
            .fetch_component(FetchComponentRequest { id: id.to_owned() })
            .await?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mounts_and_their_grants_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = dir.path().join("endpoint.toml");
        let text = format!(
            "name = \"lab\"\ngpu = \"none\"\nscratch_dir = \"{0}/scratch\"\n\
             [[mounts]]\nhost = \"{1}\"\nguest = \"/data\"\nfunctions = [\"abc\"]\n\
             [[mounts]]\nhost = \"{1}\"\nguest = \"/shared\"\nread_only = false\nfunctions = [\"*\"]\n",
            dir.path().display(),
            data.display()
        );
        std::fs::write(&config, text).unwrap();
        let c = EndpointConfig::from_file(&config).unwrap();
        assert_eq!(c.gpu, GpuChoice::None);
        assert_eq!(c.scratch_dir, dir.path().join("scratch"));
        assert_eq!(c.mounts.len(), 2);
        assert!(c.mounts[0].mount.read_only, "read-only unless said");
        assert!(!c.mounts[1].mount.read_only);
        assert!(c.mounts[0].covers("abc") && !c.mounts[0].covers("def"));
        assert!(c.mounts[1].covers("def"));
    }

    #[test]
    fn refuses_a_mount_of_a_missing_directory_or_for_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("endpoint.toml");
        std::fs::write(
            &config,
            "name = \"lab\"\n[[mounts]]\nhost = \"/no/such/dir/ferry\"\nguest = \"/data\"\nfunctions = [\"*\"]\n",
        )
        .unwrap();
        let e = format!("{:#}", EndpointConfig::from_file(&config).unwrap_err());
        assert!(e.contains("/no/such/dir/ferry"), "{e}");
        std::fs::write(
            &config,
            format!(
                "name = \"lab\"\n[[mounts]]\nhost = \"{}\"\nguest = \"/data\"\nfunctions = []\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let e = format!("{:#}", EndpointConfig::from_file(&config).unwrap_err());
        assert!(e.contains("names no functions"), "{e}");
    }
}
