//! `ferry-service`: the broker between clients and endpoints.
//!
//! - **Functions** are registered by blake3 id: the client asks first and
//!   uploads only missing bytes; the service verifies the hash, validates the
//!   component and records its exports.
//! - **Tasks** are checked against the export's WIT signature and stored
//!   durably before a submit returns.
//! - **Endpoints** dial in and hold one stream each, advertising credits; the
//!   service leases them at most that many tasks. Only the lease holder's
//!   outcome counts; tasks on a session that drops or goes silent, or whose
//!   lease expires, come back, and a task lost `max_attempts` times fails.
//! - **Watchers** get results pushed; any result can be fetched later by id.
//!
//! Every task transition is made by the transport-free [`Broker`]; the
//! gRPC services are thin adapters over it.

mod admission;
mod audit;
mod blobs;
mod components;
pub mod core;
mod deps;
pub mod durability;
mod functions;
#[cfg(test)]
mod fuzz;
mod grants;
mod grpc;
mod identities;
pub mod metrics;
pub mod quotas;
mod store;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

pub use crate::core::{Broker, Principal, Rules, TaskRecord, TaskState};
pub use durability::Durability;
pub use identities::FIRST_ADMIN;
pub use store::{FunctionRecord, MemoryStore, RedbStore, Store};

/// How a service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where the store, the registered components and the blobs live.
    pub data_dir: PathBuf,
    /// The broker's rules: heartbeats, leases, attempts, bounds.
    pub rules: Rules,
    /// Largest component accepted.
    pub max_component_bytes: u64,
    /// Registrations validated at once; more wait their turn.
    pub max_concurrent_registrations: usize,
    /// Largest MessagePack/JSON argument payload accepted.
    pub max_args_bytes: usize,
    /// Largest blob accepted.
    pub max_blob_bytes: u64,
    /// Most bytes the blob store (`<data_dir>/blobs`) holds; a put past it
    /// is refused until `ferry blob gc` makes room.
    pub max_store_bytes: u64,
    /// Finished tasks are kept this long, then pruned (unless a task that
    /// has not finished takes their result).
    pub result_retention: Duration,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Whether every call must carry a valid token. Off, every caller is
    /// one admin: only for measuring what authentication costs.
    pub auth: bool,
    /// TLS for every connection; `None` serves plaintext.
    pub tls: Option<ServerTls>,
    /// What each user may do: requests a second, unfinished tasks, bytes
    /// uploaded an hour (the unfinished-tasks quota is the broker's rule
    /// `max_unfinished_per_user`, set from here).
    pub quotas: quotas::Quotas,
    /// The audit trail, a JSON line per event (`<data_dir>/audit.jsonl`
    /// unless set); `None` keeps none.
    pub audit_log: Option<PathBuf>,
    /// What of the task state survives a crash; `strict` by default.
    pub durability: Durability,
}

/// The service's certificate, and the CA whose client certificates it
/// requires (mutual TLS), if any.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl ServiceConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        ServiceConfig {
            audit_log: Some(data_dir.join(AUDIT_LOG_FILE)),
            quotas: quotas::Quotas::default(),
            data_dir,
            rules: Rules::default(),
            max_component_bytes: 256 << 20,
            max_concurrent_registrations: 2,
            max_args_bytes: 16 << 20,
            max_blob_bytes: 64 << 30,
            max_store_bytes: u64::MAX,
            result_retention: Duration::from_secs(7 * 24 * 3600),
            metrics: None,
            auth: true,
            tls: None,
            durability: Durability::Strict,
        }
    }
}

/// The running service: the broker, the function registry and the blob
/// store, shared by all gRPC adapters.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServiceConfig,
    store: Arc<dyn Store>,
    broker: Broker,
    functions: Arc<functions::Functions>,
    components: Arc<components::Components>,
    blobs: blobs::BlobStore,
    grants: grants::BlobGrants,
    identities: identities::Identities,
    audit: audit::Audit,
    meter: quotas::Meter,
    /// Functions whose every call is memoized.
    memoized: Mutex<std::collections::HashSet<String>>,
    registrations: tokio::sync::Semaphore,
}

impl Service {
    /// Opens the store in `config.data_dir` and requeues every unfinished
    /// task; under `none` durability, the store is in memory and starts
    /// empty.
    pub fn open(config: ServiceConfig) -> anyhow::Result<Service> {
        let store: Arc<dyn Store> = match config.durability {
            Durability::None => Arc::new(MemoryStore::default()),
            d => Arc::new(RedbStore::open_with(&config.data_dir, d)?),
        };
        if let Some(loses) = config.durability.loses() {
            tracing::warn!(durability = %config.durability, "{loses}");
        }
        Service::with_store(config, store)
    }

    /// What of the task state survives a crash.
    pub fn durability(&self) -> Durability {
        self.inner.config.durability
    }

    pub fn with_store(config: ServiceConfig, store: Arc<dyn Store>) -> anyhow::Result<Service> {
        let components = Arc::new(components::Components::open(
            &config.data_dir.join("components"),
        )?);
        let moved = store.move_function_bytes(&mut |id, bytes| {
            components.put(&ferry_wit::FunctionId::parse(id)?, bytes)
        })?;
        if moved > 0 {
            tracing::info!(moved, "moved stored components out of the store into files");
        }
        let functions = Arc::new(functions::Functions::new(components.clone()));
        let mut rules = config.rules.clone();
        if config.quotas.queued_tasks.is_some() {
            rules.max_unfinished_per_user = config.quotas.queued_tasks;
        }
        let broker = Broker::open(store.clone(), functions.clone(), rules)
            .map_err(|e| anyhow::anyhow!("opening the broker: {e}"))?;
        let blobs = blobs::BlobStore::open(
            &config.data_dir.join("blobs"),
            config.max_blob_bytes,
            config.max_store_bytes,
        )?;
        let identities = identities::Identities::open(store.clone())?;
        let grants = grants::BlobGrants::open(store.clone(), config.quotas.blob_store_bytes)?;
        let audit = match &config.audit_log {
            Some(path) => audit::Audit::open(path)?,
            None => audit::Audit::off(),
        };
        let memoized = store
            .functions()?
            .into_iter()
            .filter(|f| f.memoize)
            .map(|f| f.id)
            .collect();
        Ok(Service {
            inner: Arc::new(Inner {
                registrations: tokio::sync::Semaphore::new(
                    config.max_concurrent_registrations.max(1),
                ),
                memoized: Mutex::new(memoized),
                identities,
                audit,
                meter: quotas::Meter::new(config.quotas.clone()),
                blobs,
                grants,
                config,
                store,
                broker,
                functions,
                components,
            }),
        })
    }

    /// On a service's first start, makes the first admin and returns its
    /// token, which the caller hands to whoever runs the service (the file
    /// `<data_dir>/admin.token`, mode 0600). `None` once there are users.
    pub fn bootstrap(&self) -> anyhow::Result<Option<String>> {
        let token = self
            .inner
            .identities
            .bootstrap(ferry_proto::now_ms())
            .map_err(|e| anyhow::anyhow!("making the first admin: {e}"))?;
        if let Some(t) = &token {
            let path = self.inner.config.data_dir.join(ADMIN_TOKEN_FILE);
            write_private(&path, t)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok(token)
    }

    /// A credential for an endpoint run in this process (`ferry up`'s
    /// `local`): registered to the first admin on first use, and given a
    /// new credential at each start, since none is kept anywhere else.
    pub fn own_endpoint(&self, name: &str) -> anyhow::Result<String> {
        let ids = &self.inner.identities;
        let admin = Principal::new(FIRST_ADMIN, true, "");
        let rotate = ids.endpoint(name).is_some();
        let (_, credential) = ids
            .register_endpoint(&admin, name, rotate, ferry_proto::now_ms())
            .map_err(|e| anyhow::anyhow!("registering endpoint `{name}`: {e}"))?;
        Ok(credential)
    }

    /// Who `token` speaks for, now.
    pub fn authenticate(&self, token: &str) -> Result<Principal, core::Error> {
        self.inner
            .identities
            .authenticate(token, ferry_proto::now_ms())
    }

    /// The broker core.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// Number of unfinished tasks (queued or in flight).
    pub fn unfinished(&self) -> usize {
        self.inner.broker.unfinished()
    }

    /// Serves gRPC (ferry's services, health, reflection) on `listener` until
    /// `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let metrics = match self.inner.config.metrics {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
                tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
                let service = self.clone();
                Some(tokio::spawn(metrics::serve(service, listener)))
            }
            None => None,
        };
        let keeper = self.clone();
        let keep = tokio::spawn(async move { keeper.keep_house().await });
        let result = grpc::serve(self, listener, shutdown).await;
        keep.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        result
    }

    /// Expires silent sessions and stale leases, and prunes old results.
    async fn keep_house(&self) {
        let rules = self.inner.broker.rules().clone();
        let period =
            (rules.heartbeat_timeout.min(rules.lease_timeout) / 4).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(period);
        let mut last_prune = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let service = self.clone();
            let now = tokio::time::Instant::now();
            let prune = now.duration_since(last_prune) > Duration::from_secs(60);
            if prune {
                last_prune = now;
            }
            let done = tokio::task::spawn_blocking(move || {
                if let Err(e) = service.inner.broker.expire(now) {
                    tracing::error!("expiring leases: {e}");
                }
                if prune {
                    service.prune();
                }
            })
            .await;
            if done.is_err() {
                tracing::error!("housekeeping panicked");
            }
        }
    }

    /// Removes finished tasks past the retention period, in bounded passes.
    fn prune(&self) {
        let retention = self.inner.config.result_retention;
        let before = ferry_proto::now_ms() - retention.as_millis() as i64;
        let keep = self.inner.broker.needed_results();
        match self
            .inner
            .store
            .prune_finished(before, &|id| keep.contains(id), 10_000)
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned finished tasks past their retention"),
            Err(e) => tracing::error!("pruning finished tasks: {e:#}"),
        }
    }
}

/// The audit trail's file in the data directory, unless configured.
pub const AUDIT_LOG_FILE: &str = "audit.jsonl";

/// The file in the data directory that holds the first admin's token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Writes a secret readable by its owner alone.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    writeln!(f, "{text}")?;
    f.sync_all()
}

/// Binds `addr` and serves until ctrl-c.
pub async fn run(config: ServiceConfig, addr: SocketAddr) -> anyhow::Result<()> {
    let service = Service::open(config)?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    service
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
