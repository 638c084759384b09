//! `[provider]` in an endpoint's config: the resource manager that runs its
//! blocks of workers, and the strategy's settings. With one, the endpoint
//! is an elastic endpoint's manager.

use std::path::PathBuf;

use anyhow::Context;
use ferry_scale::{Settings, SlurmConfig};
use serde::Deserialize;

/// An elastic endpoint: where its workers run, and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub settings: Settings,
    /// The worker's program and its first arguments (default: this
    /// program); the manager adds `--name`, `--service` and `--concurrency`.
    pub command: Option<Vec<String>>,
    /// Where blocks keep their scripts and output (default: under the
    /// cache directory). On a cluster, a directory the nodes share.
    pub work_dir: Option<PathBuf>,
}

/// The resource manager.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// Child processes of the manager, on this machine.
    Local,
    Slurm(SlurmConfig),
    #[cfg(feature = "kubernetes")]
    Kubernetes(ferry_scale::KubernetesConfig),
}

impl ProviderKind {
    pub fn name(&self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Slurm(_) => "slurm",
            #[cfg(feature = "kubernetes")]
            ProviderKind::Kubernetes(_) => "kubernetes",
        }
    }
}

/// `[provider]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderFile {
    kind: String,
    min_blocks: Option<u32>,
    init_blocks: Option<u32>,
    max_blocks: Option<u32>,
    workers_per_block: Option<u32>,
    worker_slots: Option<u32>,
    parallelism: Option<f64>,
    max_idletime: Option<String>,
    period: Option<String>,
    command: Option<Vec<String>>,
    work_dir: Option<PathBuf>,
    slurm: Option<SlurmConfig>,
    kubernetes: Option<toml::Value>,
}

impl ProviderFile {
    /// Checks the section; `slots` is the endpoint's `concurrency`, the
    /// default for `worker_slots`.
    pub(crate) fn resolve(self, slots: u32) -> anyhow::Result<ProviderConfig> {
        let d = Settings::default();
        let duration = |what: &str, v: Option<String>, default| match v {
            None => Ok(default),
            Some(t) => {
                ferry_host::parse_duration(&t).with_context(|| format!("provider setting `{what}`"))
            }
        };
        let settings = Settings {
            min_blocks: self.min_blocks.unwrap_or(d.min_blocks),
            init_blocks: self.init_blocks.unwrap_or(d.init_blocks),
            max_blocks: self.max_blocks.unwrap_or(d.max_blocks),
            workers_per_block: self.workers_per_block.unwrap_or(d.workers_per_block),
            worker_slots: self.worker_slots.unwrap_or(slots),
            parallelism: self.parallelism.unwrap_or(d.parallelism),
            max_idletime: duration("max_idletime", self.max_idletime, d.max_idletime)?,
            period: duration("period", self.period, d.period)?,
        };
        settings.validate()?;
        let other = |section: &str| {
            anyhow::bail!(
                "[provider.{section}] is for kind = \"{section}\", not \"{}\"",
                self.kind
            )
        };
        let kind = match self.kind.as_str() {
            "local" => {
                if self.slurm.is_some() {
                    return other("slurm");
                }
                if self.kubernetes.is_some() {
                    return other("kubernetes");
                }
                ProviderKind::Local
            }
            "slurm" => {
                if self.kubernetes.is_some() {
                    return other("kubernetes");
                }
                ProviderKind::Slurm(self.slurm.clone().unwrap_or_default())
            }
            #[cfg(feature = "kubernetes")]
            "kubernetes" => {
                if self.slurm.is_some() {
                    return other("slurm");
                }
                let section = self
                    .kubernetes
                    .clone()
                    .context("kind = \"kubernetes\" needs [provider.kubernetes] with an image")?;
                ProviderKind::Kubernetes(section.try_into().context("in [provider.kubernetes]")?)
            }
            #[cfg(not(feature = "kubernetes"))]
            "kubernetes" => anyhow::bail!(
                "this endpoint was built without the Kubernetes provider (the `kubernetes` feature)"
            ),
            other => anyhow::bail!(
                "provider kind `{other}` is not known: use \"local\", \"slurm\" or \"kubernetes\""
            ),
        };
        if let Some(c) = &self.command {
            anyhow::ensure!(!c.is_empty(), "provider setting `command`: needs a program");
        }
        Ok(ProviderConfig {
            kind,
            settings,
            command: self.command,
            work_dir: self.work_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ProviderConfig> {
        #[derive(Deserialize)]
        struct F {
            provider: ProviderFile,
        }
        let f: F = toml::from_str(text)?;
        f.provider.resolve(4)
    }

    #[test]
    fn reads_the_settings_and_the_slurm_section() {
        let p = parse(
            "[provider]\nkind = \"slurm\"\nmax_blocks = 2\nmax_idletime = \"30s\"\nperiod = \"1s\"\n\
             [provider.slurm]\npartition = \"debug\"\nwalltime = \"00:10:00\"\n",
        )
        .unwrap();
        assert_eq!(p.settings.max_blocks, 2);
        assert_eq!(p.settings.worker_slots, 4, "the endpoint's concurrency");
        assert_eq!(p.settings.max_idletime, std::time::Duration::from_secs(30));
        assert_eq!(p.settings.period, std::time::Duration::from_secs(1));
        let ProviderKind::Slurm(s) = p.kind else {
            panic!("{:?}", p.kind)
        };
        assert_eq!(s.partition.as_deref(), Some("debug"));
        assert_eq!(s.walltime, "00:10:00");
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            ("[provider]\nkind = \"pbs\"\n", "provider kind `pbs`"),
            (
                "[provider]\nkind = \"local\"\nmin_blocks = 3\nmax_blocks = 2\n",
                "min_blocks",
            ),
            (
                "[provider]\nkind = \"local\"\nmax_idletime = \"soon\"\n",
                "max_idletime",
            ),
            (
                "[provider]\nkind = \"local\"\n[provider.slurm]\npartition = \"x\"\n",
                "[provider.slurm] is for kind = \"slurm\"",
            ),
            (
                "[provider]\nkind = \"slurm\"\n[provider.slurm]\npartiton = \"x\"\n",
                "partiton",
            ),
            ("[provider]\nkind = \"local\"\nmax_block = 2\n", "max_block"),
            ("[provider]\nkind = \"local\"\ncommand = []\n", "command"),
        ];
        for (text, named) in cases {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(named), "{text}: {e}");
        }
    }
}
