//! An elastic endpoint's manager: it runs no tasks itself. Each period it
//! reports its blocks to the service and reads back the endpoint's queue
//! and workers, lets `ferry-scale`'s strategy decide, and asks its provider
//! for blocks of worker agents, or drains and cancels them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use ferry_proto::v1::{self as pb, endpoints_client::EndpointsClient};
use ferry_scale::{
    Decision, Fabric, Load, LocalProvider, Manager, Provider, SlurmProvider, Strategy, WorkerLoad,
    Workers,
};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::{EndpointConfig, ProviderKind, credential};

type Client = EndpointsClient<ferry_proto::auth::Conn>;

/// The service as the manager sees it, through the endpoint's credential.
struct ServiceFabric {
    client: Client,
    name: String,
    provider: &'static str,
    /// The blocks as of the last period, reported with the next load.
    blocks: Mutex<Vec<pb::BlockStatus>>,
}

impl Fabric for ServiceFabric {
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Load>> {
        async move {
            let blocks = self
                .blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let load = self
                .client
                .clone()
                .load(pb::LoadRequest {
                    name: self.name.clone(),
                    blocks,
                    provider: self.provider.into(),
                })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            Ok(Load {
                queued: load.queued,
                running: load.running,
                workers: load
                    .workers
                    .into_iter()
                    .filter(|w| !w.block.is_empty())
                    .map(|w| WorkerLoad {
                        block: w.block,
                        in_flight: w.in_flight,
                    })
                    .collect(),
            })
        }
        .boxed()
    }

    fn drain<'a>(&'a self, block: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            self.client
                .clone()
                .drain(pb::DrainRequest {
                    name: self.name.clone(),
                    block: block.to_owned(),
                })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
            Ok(())
        }
        .boxed()
    }
}

/// Runs the manager until `shutdown`, then cancels every block it holds.
pub(crate) async fn manage(
    config: EndpointConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let p = config.provider.clone().context("no [provider]")?;
    let name = config.name.clone();
    let credential = credential::find(&config).await?;
    let bearer = ferry_proto::auth::Bearer::new(Some(&credential))
        .map_err(|e| anyhow::anyhow!("endpoint `{name}`: {e}"))?;
    let channel = ferry_proto::dial(&config.service, &config.tls)
        .with_context(|| format!("bad service URL `{}`", config.service))?
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let client = EndpointsClient::new(ferry_proto::auth::Conn::new(channel, bearer));
    let provider: Box<dyn Provider> = match &p.kind {
        ProviderKind::Local => Box::new(LocalProvider::new()),
        ProviderKind::Slurm(s) => Box::new(SlurmProvider::new(s.clone())?),
        #[cfg(feature = "kubernetes")]
        ProviderKind::Kubernetes(k) => Box::new(ferry_scale::KubernetesProvider::new(k.clone())?),
    };
    let fabric = ServiceFabric {
        client,
        name: name.clone(),
        provider: p.kind.name(),
        blocks: Mutex::default(),
    };
    let workers = workers(&config, &credential)?;
    // Unique per run, so that a restarted manager's blocks are its own.
    let run = format!("{:x}", ferry_proto::now_ms() / 1000);
    let strategy = Strategy::new(p.settings.clone(), format!("{name}-{run}"));
    let mut manager = Manager::new(strategy, provider, fabric, workers);
    tracing::info!(
        endpoint = %name,
        provider = p.kind.name(),
        min_blocks = p.settings.min_blocks,
        max_blocks = p.settings.max_blocks,
        workers_per_block = p.settings.workers_per_block,
        worker_slots = p.settings.worker_slots,
        "managing blocks of workers"
    );
    let mut tick = tokio::time::interval(p.settings.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let blocks = report(manager.strategy());
        *manager
            .fabric()
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = blocks;
        let decided = manager.step(tokio::time::Instant::now()).await;
        for d in &decided {
            log(&name, d);
        }
        // What changed is shown at once, not a period later.
        let now = report(manager.strategy());
        let stale = *manager
            .fabric()
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            != now;
        if stale {
            *manager
                .fabric()
                .blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = now;
            if let Err(e) = manager.fabric().load().await {
                tracing::debug!(endpoint = %name, "reporting blocks: {e:#}");
            }
        }
    }
    for d in manager.shutdown().await {
        log(&name, &d);
    }
    Ok(())
}

/// How this manager's workers start: this program (or the `command` of
/// `[provider]`), as a worker of the same endpoint and service, with the
/// manager's config file where they can read it, and its credential.
fn workers(config: &EndpointConfig, credential: &str) -> anyhow::Result<Workers> {
    let p = config.provider.as_ref().context("no [provider]")?;
    let mut command = p.command.clone().unwrap_or_else(|| config.program.clone());
    let in_cluster = !matches!(p.kind, ProviderKind::Local | ProviderKind::Slurm(_));
    if let Some(file) = &config.config_file
        && !in_cluster
    {
        command.extend(["--config".into(), file.display().to_string()]);
    }
    command.extend([
        "--name".into(),
        config.name.clone(),
        "--service".into(),
        config.service.clone(),
        "--concurrency".into(),
        p.settings.worker_slots.to_string(),
    ]);
    let env = BTreeMap::from([(credential::CREDENTIAL_ENV.to_owned(), credential.to_owned())]);
    let work_dir = match &p.work_dir {
        Some(d) => d.clone(),
        None => config
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("ferry-{}", config.name)))
            .join("blocks"),
    };
    Ok(Workers {
        command,
        env,
        work_dir,
    })
}

fn report(strategy: &Strategy) -> Vec<pb::BlockStatus> {
    strategy
        .blocks()
        .map(|b| pb::BlockStatus {
            id: b.id.clone(),
            job: b.job.as_ref().map(|j| j.0.clone()).unwrap_or_default(),
            phase: b.phase.as_str().into(),
            workers: b.workers,
            in_flight: b.in_flight,
        })
        .collect()
}

/// Each decision with its reason, so that the log says why the endpoint
/// grew or shrank.
fn log(endpoint: &str, d: &Decision) {
    match d {
        Decision::Submitted { block, job, reason } => {
            tracing::info!(endpoint, block, job = %job, reason, "scale out: block submitted")
        }
        Decision::SubmitFailed { block, error } => {
            tracing::warn!(
                endpoint,
                block,
                error,
                "scale out failed: the provider refused the block"
            )
        }
        Decision::Cancelled { block, job, reason } => {
            tracing::info!(endpoint, block, job = %job, reason, "block cancelled")
        }
        Decision::Drained { block, reason } => {
            tracing::info!(endpoint, block, reason, "scale in: block draining")
        }
        Decision::Ended {
            block,
            job,
            end,
            expected,
        } => {
            if *expected || *end == ferry_scale::JobEnd::Completed {
                tracing::info!(endpoint, block, job = %job, end = %end, "block ended")
            } else {
                tracing::warn!(endpoint, block, job = %job, end = %end, "block ended unasked; its tasks come back through their leases")
            }
        }
        Decision::Unavailable { what, error } => {
            tracing::warn!(
                endpoint,
                what,
                error,
                "could not ask; trying again next period"
            )
        }
    }
}
