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
#[cfg(feature = "camera")]
mod cameras;
mod config;
mod credential;
mod elastic;
mod fetch;
mod grants;
#[cfg(feature = "cli")]
mod logging;
mod provider;
mod session;
mod window;

#[cfg(feature = "cli")]
pub use args::StartArgs;
#[cfg(feature = "camera")]
pub use cameras::{CameraConfig, Source as CameraSource};
pub use config::{EndpointConfig, MaxLimits, ProviderConfig, ProviderKind};
pub use credential::CREDENTIAL_ENV;
#[cfg(feature = "cli")]
pub use logging::{LogGuard, init_logging, init_logging_with};

use std::sync::Arc;
use std::time::Duration;

use ferry_host::{GpuChoice, Host, HostConfig};

/// Runs the endpoint until `shutdown` resolves, redialling as needed; or,
/// with a `[provider]` and no block of its own, its manager. A worker that
/// is drained returns once its tasks are answered.
pub async fn run(
    config: EndpointConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if config.provider.is_some() && config.block.is_none() {
        return elastic::manage(config, shutdown).await;
    }
    let bearer = ferry_proto::auth::Bearer::default();
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
        &config.tls,
        bearer.clone(),
        blob_dir,
        config.blob_cache,
        config.shared_blob_store.clone(),
    )?);
    #[allow(unused_mut)]
    let mut options = grants::lent(&config, blobs.clone());
    #[cfg(feature = "camera")]
    for cam in &config.cameras {
        let camera = cam.start()?;
        tracing::info!(endpoint = %config.name, "camera {} ({})", cam.name, camera.description());
        options.camera.push(ferry_host::Lent::to(
            camera,
            ferry_host::Scope::functions(cam.functions.iter().cloned()),
        ));
    }
    let grants = host.grants(&options);
    let agent = Arc::new(Agent {
        options,
        grants,
        blobs,
        bearer,
        workers: Arc::new(tokio::sync::Semaphore::new(config.concurrency as usize)),
        config,
        host,
        fetching: tokio::sync::Mutex::new(()),
        abort_on: std::env::var("FERRY_TEST_ABORT_ON_EXPORT").ok(),
    });
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        // Looked up at each dial, unless given: a login made after this
        // endpoint started, or a service that came up later, is found.
        let found = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            c = credential::find(&agent.config) => c,
        };
        match found {
            Ok(c) => agent
                .bearer
                .set(Some(&c))
                .map_err(|e| anyhow::anyhow!("endpoint `{}`: {e}", agent.config.name))?,
            Err(e) if e.downcast_ref::<credential::Refused>().is_some() => return Err(e),
            Err(e) => {
                tracing::warn!(endpoint = %agent.config.name, "{e:#}; retrying in {backoff:?}");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = agent.clone().session() => {
                match r {
                    Ok(session::Ended::Drained) => return Ok(()),
                    Ok(session::Ended::Closed) => {
                        tracing::info!(endpoint = %agent.config.name, "the service closed the session; redialling");
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        // A refused token stays refused: redialling would
                        // only knock again.
                        if let Some(s) = e.downcast_ref::<tonic::Status>()
                            && matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
                        {
                            anyhow::bail!(
                                "the service refused endpoint `{}`: {}",
                                agent.config.name,
                                s.message()
                            );
                        }
                        tracing::warn!(endpoint = %agent.config.name, "{e:#}; retrying in {backoff:?}")
                    }
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

/// Resolves on Ctrl-C or SIGTERM, the signals a person, systemd and
/// Kubernetes stop a process with.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

struct Agent {
    /// What every call is lent, each part to the functions it names.
    options: ferry_host::CallOptions,
    /// The policy those grants make, as advertised in the hello.
    grants: ferry_host::Grants,
    blobs: Arc<blobs::FetchedBlobs>,
    /// The token every call to the service carries.
    bearer: ferry_proto::auth::Bearer,
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
