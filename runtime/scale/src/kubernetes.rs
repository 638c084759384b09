//! The Kubernetes provider: a block is one `batch/v1` Job whose pods are
//! its workers. The Job's conditions say where it stands; deleting it ends
//! the block, and a finished Job is removed by the cluster after a while.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::provider::{BlockSpec, JobEnd, JobId, JobState, Provider};

/// The worker's credential variable; with `credential_secret` it comes
/// from the Secret, never as plain text in the Job.
const CREDENTIAL_ENV: &str = "FERRY_ENDPOINT_CREDENTIAL";
const CA_DIR: &str = "/etc/ferry/ca";
/// Long enough to read a finished Job's end, short enough not to pile up.
const TTL_AFTER_FINISHED: i32 = 600;
const GPU_RESOURCE: &str = "nvidia.com/gpu";
const BLOCK_LABEL: &str = "ferry.dev/block";
const NAME_LABEL: &str = "app.kubernetes.io/name";

/// `[provider.kubernetes]` in an endpoint's config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub namespace: String,
    /// The worker image; it must hold the worker program.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; the cluster's default if unset.
    pub image_pull_policy: Option<String>,
    /// Each worker's CPU, requested and limited alike (`"2"`, `"500m"`).
    pub cpu: Option<String>,
    /// Each worker's memory, requested and limited alike (`"4Gi"`).
    pub memory: Option<String>,
    /// `nvidia.com/gpu` per worker.
    pub gpus: u32,
    pub node_selector: BTreeMap<String, String>,
    pub service_account: Option<String>,
    /// A Secret whose key `credential` holds the endpoint's credential.
    pub credential_secret: Option<String>,
    /// A Secret whose key `ca.crt` is the service's CA, for a service whose
    /// certificate the image does not trust.
    pub ca_secret: Option<String>,
    /// How long a block may run: seconds (`"3600"`) or `"1h"`, `"30m"`,
    /// `"90s"`, `"1h30m"`. Unbounded if unset.
    pub walltime: Option<String>,
    /// Further labels on the Job and its pods.
    pub labels: BTreeMap<String, String>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: "default".into(),
            image: String::new(),
            image_pull_policy: None,
            cpu: None,
            memory: None,
            gpus: 0,
            node_selector: BTreeMap::new(),
            service_account: None,
            credential_secret: None,
            ca_secret: None,
            walltime: None,
            labels: BTreeMap::new(),
        }
    }
}

impl KubernetesConfig {
    /// Checks what can be checked without a cluster, naming the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.image.trim().is_empty() {
            bail!("provider setting `image`: needs the worker image (`registry/ferry-worker:tag`)");
        }
        if !is_dns_label(&self.namespace) {
            bail!(
                "provider setting `namespace`: `{}` is not a namespace name",
                self.namespace
            );
        }
        if let Some(p) = &self.image_pull_policy
            && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
        {
            bail!(
                "provider setting `image_pull_policy`: `{p}` is none of `Always`, `IfNotPresent`, `Never`"
            );
        }
        for (setting, value) in [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("service_account", &self.service_account),
            ("credential_secret", &self.credential_secret),
            ("ca_secret", &self.ca_secret),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                bail!("provider setting `{setting}`: is empty; leave it out instead");
            }
        }
        if let Some(w) = &self.walltime {
            parse_walltime(w)
                .map_err(|problem| anyhow!("provider setting `walltime`: `{w}` {problem}"))?;
        }
        Ok(())
    }
}

/// Seconds in `"3600"`, `"1h"`, `"30m"`, `"90s"`, `"1d"`, `"1h30m"`.
fn parse_walltime(s: &str) -> Result<i64, &'static str> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return if secs > 0 {
            Ok(secs)
        } else {
            Err("must be more than zero")
        };
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err("is not a time (`3600`, `1h`, `30m`, `90s`)"),
        };
        let n: i64 = digits
            .parse()
            .map_err(|_| "is not a time (`3600`, `1h`, `30m`, `90s`)")?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|t| total.checked_add(t))
            .ok_or("is too long")?;
    }
    if !digits.is_empty() || s.is_empty() {
        return Err("is not a time (`3600`, `1h`, `30m`, `90s`)");
    }
    if total == 0 {
        return Err("must be more than zero");
    }
    Ok(total)
}

/// Whether `s` is a DNS-1123 label, as Job and namespace names must be.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` may be a label's value.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// FNV-1a: a stable hash, so that a block's Job name is the same in every
/// build.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Job's name: `ferry-<block>`. A block id that is not already a short
/// lowercase label is folded into one and given a hash of the id, so that
/// two ids that fold alike, or share a long prefix, still differ.
pub fn job_name(block: &str) -> String {
    const PREFIX: &str = "ferry-";
    let plain = format!("{PREFIX}{block}");
    if is_dns_label(&plain) {
        return plain;
    }
    let hash = format!("{:010x}", fnv1a(block) >> 24);
    let folded: String = block
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let room = 63 - PREFIX.len() - 1 - hash.len();
    let folded: String = folded.chars().take(room).collect();
    let folded = folded.trim_matches('-');
    if folded.is_empty() {
        format!("{PREFIX}{hash}")
    } else {
        format!("{PREFIX}{folded}-{hash}")
    }
}

/// The Job for one block. The config is taken as `validate` accepted it; a
/// walltime it would refuse is left out. An empty command runs the image's
/// own entrypoint.
pub fn job_for(config: &KubernetesConfig, block: &BlockSpec) -> Job {
    let name = job_name(&block.block);
    let block_label = if is_label_value(&block.block) {
        block.block.clone()
    } else {
        name["ferry-".len()..].to_owned()
    };
    let mut labels = config.labels.clone();
    labels.insert(NAME_LABEL.into(), "ferry-worker".into());
    labels.insert(BLOCK_LABEL.into(), block_label);

    let mut env: BTreeMap<String, EnvVar> = block
        .env
        .iter()
        .map(|(k, v)| {
            let var = EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                ..EnvVar::default()
            };
            (k.clone(), var)
        })
        .collect();
    if let Some(secret) = &config.credential_secret {
        let var = EnvVar {
            name: CREDENTIAL_ENV.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: "credential".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        env.insert(CREDENTIAL_ENV.into(), var);
    }

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(secret) = &config.ca_secret {
        volumes.push(Volume {
            name: "ferry-ca".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "ferry-ca".into(),
            mount_path: CA_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        let var = EnvVar {
            name: "FERRY_CA".into(),
            value: Some(format!("{CA_DIR}/ca.crt")),
            ..EnvVar::default()
        };
        env.insert(var.name.clone(), var);
    }

    let mut amounts = BTreeMap::new();
    if let Some(cpu) = &config.cpu {
        amounts.insert("cpu".to_owned(), Quantity(cpu.trim().to_owned()));
    }
    if let Some(memory) = &config.memory {
        amounts.insert("memory".to_owned(), Quantity(memory.trim().to_owned()));
    }
    let mut limits = amounts.clone();
    if config.gpus > 0 {
        // An extended resource's request defaults to its limit.
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(config.gpus.to_string()));
    }
    let resources = (!limits.is_empty()).then(|| ResourceRequirements {
        limits: Some(limits),
        requests: (!amounts.is_empty()).then_some(amounts),
        ..ResourceRequirements::default()
    });

    let container = Container {
        name: "worker".into(),
        image: Some(config.image.trim().to_owned()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: (!block.command.is_empty()).then(|| block.command.clone()),
        env: (!env.is_empty()).then(|| env.into_values().collect()),
        resources,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    };
    let workers = i32::try_from(block.workers).unwrap_or(i32::MAX);
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            parallelism: Some(workers),
            completions: Some(workers),
            // A worker that fails ends its block; the strategy starts another.
            backoff_limit: Some(0),
            active_deadline_seconds: config
                .walltime
                .as_deref()
                .and_then(|w| parse_walltime(w).ok()),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".into()),
                    node_selector: (!config.node_selector.is_empty())
                        .then(|| config.node_selector.clone()),
                    service_account_name: config.service_account.clone(),
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Where a Job stands. Its `Complete` or `Failed` condition ends it (a
/// `DeadlineExceeded` failure is its walltime); one being deleted was
/// cancelled. Otherwise it runs once a worker's pod is ready (or, where
/// the cluster reports no readiness, once one is active) or has ended, and
/// is pending before.
pub fn state_of(job: &Job) -> JobState {
    if let Some(status) = &job.status {
        for c in status.conditions.iter().flatten() {
            if c.status != "True" {
                continue;
            }
            match c.type_.as_str() {
                "Complete" => return JobState::Ended(JobEnd::Completed),
                "Failed" if c.reason.as_deref() == Some("DeadlineExceeded") => {
                    return JobState::Ended(JobEnd::TimedOut);
                }
                "Failed" => {
                    let why = match (c.reason.as_deref(), c.message.as_deref()) {
                        (Some(r), Some(m)) => format!("{r}: {m}"),
                        (Some(w), None) | (None, Some(w)) => w.to_owned(),
                        (None, None) => "the Job failed".to_owned(),
                    };
                    return JobState::Ended(JobEnd::Failed(why));
                }
                _ => {}
            }
        }
    }
    if job.metadata.deletion_timestamp.is_some() {
        return JobState::Ended(JobEnd::Cancelled);
    }
    let Some(status) = &job.status else {
        return JobState::Pending;
    };
    let count = |n: Option<i32>| n.unwrap_or(0) > 0;
    let started = match status.ready {
        Some(ready) => ready > 0,
        None => count(status.active),
    };
    if started || count(status.succeeded) || count(status.failed) {
        JobState::Running
    } else {
        JobState::Pending
    }
}

/// Runs blocks as Kubernetes Jobs.
pub struct KubernetesProvider {
    config: KubernetesConfig,
    /// Made on first use, so that a provider can be built (and its config
    /// checked) where no cluster is reachable.
    client: OnceCell<kube::Client>,
}

impl KubernetesProvider {
    /// The cluster is found on first use: the pod's service account in a
    /// cluster, the kubeconfig elsewhere.
    pub fn new(config: KubernetesConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(KubernetesProvider {
            config,
            client: OnceCell::new(),
        })
    }

    /// With a client already made (another cluster, another identity).
    pub fn with_client(config: KubernetesConfig, client: kube::Client) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(KubernetesProvider {
            config,
            client: OnceCell::from(client),
        })
    }

    async fn jobs(&self) -> anyhow::Result<Api<Job>> {
        let client = self
            .client
            .get_or_try_init(|| async {
                kube::Client::try_default().await.map_err(|e| {
                    anyhow!(
                        "cannot reach Kubernetes (no in-cluster service account or usable kubeconfig): {}",
                        said(&e)
                    )
                })
            })
            .await?;
        Ok(Api::namespaced(client.clone(), &self.config.namespace))
    }

    async fn create(&self, block: &BlockSpec) -> anyhow::Result<JobId> {
        let job = job_for(&self.config, block);
        let name = job.metadata.name.clone().unwrap_or_default();
        let ns = &self.config.namespace;
        self.jobs()
            .await?
            .create(&PostParams::default(), &job)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot create the Job `{name}` in namespace `{ns}`: {}",
                    said(&e)
                )
            })?;
        Ok(JobId(name))
    }

    async fn states(&self, jobs: &[JobId]) -> anyhow::Result<Vec<JobState>> {
        let api = self.jobs().await?;
        let ns = &self.config.namespace;
        futures::future::try_join_all(jobs.iter().map(|id| {
            let api = &api;
            async move {
                match api.get_opt(&id.0).await {
                    Ok(Some(job)) => Ok(state_of(&job)),
                    Ok(None) => Ok(JobState::Ended(JobEnd::Vanished)),
                    Err(e) => Err(anyhow!(
                        "cannot read the Job `{id}` in namespace `{ns}`: {}",
                        said(&e)
                    )),
                }
            }
        }))
        .await
    }

    async fn delete(&self, job: &JobId) -> anyhow::Result<()> {
        let ns = &self.config.namespace;
        // Background: the Job goes now, and the cluster removes its pods.
        match self
            .jobs()
            .await?
            .delete(&job.0, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(anyhow!(
                "cannot delete the Job `{job}` in namespace `{ns}`: {}",
                said(&e)
            )),
        }
    }
}

impl Provider for KubernetesProvider {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn submit<'a>(&'a self, block: &'a BlockSpec) -> BoxFuture<'a, anyhow::Result<JobId>> {
        self.create(block).boxed()
    }

    fn status<'a>(&'a self, jobs: &'a [JobId]) -> BoxFuture<'a, anyhow::Result<Vec<JobState>>> {
        self.states(jobs).boxed()
    }

    fn cancel<'a>(&'a self, job: &'a JobId) -> BoxFuture<'a, anyhow::Result<()>> {
        self.delete(job).boxed()
    }
}

/// What the API server said, without the client's debug dump of it.
fn said(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{} ({})", s.message, s.code)
        }
        kube::Error::Api(s) => format!("the API server answered {}", s.code),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "kubernetes_tests.rs"]
mod tests;
