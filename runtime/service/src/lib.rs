//! `ferry-service`: the broker between clients and endpoints.
//!
//! - **Functions** are registered by blake3 id: the client asks first and
//!   uploads only missing bytes; the service verifies the hash, validates the
//!   component and records its exports.
//! - **Tasks** are checked against the export's WIT signature and stored
//!   durably before a submit returns.
//! - **Endpoints** dial in and hold one stream each, advertising credits; the
//!   service pushes at most that many tasks (prefetch and backpressure). Tasks
//!   in flight on a session that drops or goes silent go back to the queue.
//! - **Watchers** get results pushed; any result can be fetched later by id.

mod blobs;
mod dataflow;
mod deps;
mod grpc;
mod sched;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_host::{Host, HostConfig};
use ferry_proto::v1::TaskState;
use tokio::net::TcpListener;

pub use store::{FunctionRecord, RedbStore, Store, TaskRecord};

/// How a service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where the store and compiled components live.
    pub data_dir: PathBuf,
    /// A session silent for this long is dropped and its tasks requeued.
    pub heartbeat_timeout: Duration,
    /// Largest component accepted.
    pub max_component_bytes: u64,
    /// Largest MessagePack/JSON argument payload accepted.
    pub max_args_bytes: usize,
    /// Largest blob accepted.
    pub max_blob_bytes: u64,
    /// Most bytes the blob store (`<data_dir>/blobs`) holds; a put past it
    /// is refused until `ferry blob gc` makes room.
    pub max_store_bytes: u64,
}

impl ServiceConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServiceConfig {
            data_dir: data_dir.into(),
            heartbeat_timeout: Duration::from_secs(10),
            max_component_bytes: 256 << 20,
            max_args_bytes: 16 << 20,
            max_blob_bytes: 64 << 30,
            max_store_bytes: u64::MAX,
        }
    }
}

/// The running service state, shared by all gRPC handlers.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServiceConfig,
    store: Box<dyn Store>,
    /// Validates components and checks arguments; never runs a task.
    host: Host,
    sched: Mutex<sched::Sched>,
    blobs: blobs::BlobStore,
    /// Functions whose every call is memoized.
    memoized: Mutex<std::collections::HashSet<String>>,
}

impl Service {
    /// Opens the store in `config.data_dir` and requeues every unfinished task.
    pub fn open(config: ServiceConfig) -> anyhow::Result<Service> {
        let store = RedbStore::open(&config.data_dir)?;
        Service::with_store(config, Box::new(store))
    }

    pub fn with_store(config: ServiceConfig, store: Box<dyn Store>) -> anyhow::Result<Service> {
        let host = Host::new(HostConfig {
            cache_dir: Some(config.data_dir.join("compiled")),
            pooling: false,
            ..HostConfig::default()
        })?;
        let mut s = sched::Sched::default();
        s.known_endpoints.extend(store.endpoints()?);
        let mut unfinished = store.tasks()?;
        // Oldest first: ids sort by creation time.
        unfinished.sort_by(|a, b| a.id.cmp(&b.id));
        let now = sched::now_ms();
        for mut task in unfinished {
            let state = TaskState::try_from(task.state).unwrap_or(TaskState::Unspecified);
            if state.is_terminal() {
                *s.finished.entry(task.state).or_default() += 1;
                continue;
            }
            if state == TaskState::WaitingForDependencies {
                s.tasks.insert(task.id.clone(), task);
                continue;
            }
            if state != TaskState::WaitingForEndpoint {
                sched::set_state(&mut task, TaskState::WaitingForEndpoint, now);
            }
            s.queues
                .entry(task.endpoint.clone())
                .or_default()
                .push_back(task.id.clone());
            s.tasks.insert(task.id.clone(), task);
        }
        let blobs = blobs::BlobStore::open(
            &config.data_dir.join("blobs"),
            config.max_blob_bytes,
            config.max_store_bytes,
        )?;
        let memoized = store
            .functions()?
            .into_iter()
            .filter(|f| f.memoize)
            .map(|f| f.id)
            .collect();
        let service = Service {
            inner: Arc::new(Inner {
                memoized: Mutex::new(memoized),
                blobs,
                config,
                store,
                host,
                sched: Mutex::new(s),
            }),
        };
        service.recover_dependencies()?;
        Ok(service)
    }

    fn sched(&self) -> std::sync::MutexGuard<'_, sched::Sched> {
        self.inner.sched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of unfinished tasks (queued or in flight).
    pub fn unfinished(&self) -> usize {
        self.sched().tasks.len()
    }

    /// Serves gRPC (ferry's services, health, reflection) on `listener` until
    /// `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let reaper = self.clone();
        let reap = tokio::spawn(async move { reaper.reap_silent_sessions().await });
        let result = grpc::serve(self, listener, shutdown).await;
        reap.abort();
        result
    }

    /// Drops sessions that stopped talking, so their tasks go elsewhere.
    async fn reap_silent_sessions(&self) {
        let timeout = self.inner.config.heartbeat_timeout;
        let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            let mut s = self.sched();
            let silent: Vec<u64> = s
                .sessions
                .iter()
                .filter(|(_, sess)| sess.last_seen.elapsed() > timeout)
                .map(|(id, _)| *id)
                .collect();
            for sid in silent {
                if let Some(endpoint) = s.drop_session(sid) {
                    eprintln!(
                        "ferry-service: session {sid} of endpoint `{endpoint}` missed its heartbeats; requeued its tasks"
                    );
                    s.dispatch(&endpoint);
                }
            }
        }
    }
}

/// Binds `addr` and serves until ctrl-c.
pub async fn run(config: ServiceConfig, addr: SocketAddr) -> anyhow::Result<()> {
    let service = Service::open(config)?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("ferry-service: listening on {}", listener.local_addr()?);
    service
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
