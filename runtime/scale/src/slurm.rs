//! The Slurm provider: a block is one batch job, written as a script and
//! given to `sbatch`; `srun` starts its workers; `squeue`, then `sacct` or
//! `scontrol` for jobs that have left the queue, say where it stands;
//! `scancel` ends it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::process::Command;

use crate::provider::{BlockSpec, JobEnd, JobId, JobState, Provider};

/// `[provider.slurm]` in an endpoint's config, as Parsl's `SlurmProvider`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `--time`, in Slurm's own form (`HH:MM:SS`, `D-HH`, minutes).
    pub walltime: String,
    pub nodes_per_block: u32,
    /// Shell lines run before the workers start (`module load`, a
    /// virtualenv, a path).
    pub worker_init: String,
    /// Further options, each a `#SBATCH` line (the prefix may be left out).
    pub scheduler_options: Vec<String>,
    /// The launcher and its options; the worker command follows.
    pub launcher: Vec<String>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            walltime: "01:00:00".into(),
            nodes_per_block: 1,
            worker_init: String::new(),
            scheduler_options: Vec::new(),
            launcher: vec!["srun".into()],
        }
    }
}

/// Runs blocks as Slurm batch jobs.
pub struct SlurmProvider {
    config: SlurmConfig,
}

impl SlurmProvider {
    pub fn new(config: SlurmConfig) -> anyhow::Result<Self> {
        if config.nodes_per_block == 0 {
            bail!("provider setting `nodes_per_block`: must be at least 1");
        }
        if config.launcher.is_empty() {
            bail!("provider setting `launcher`: needs a program (`srun`)");
        }
        if config.walltime.trim().is_empty() {
            bail!("provider setting `walltime`: needs a time (`01:00:00`)");
        }
        Ok(SlurmProvider { config })
    }

    /// The batch script for one block.
    pub fn script(&self, block: &BlockSpec) -> String {
        let c = &self.config;
        let mut s = String::from("#!/bin/bash\n");
        let dir = block.work_dir.display();
        let _ = writeln!(s, "#SBATCH --job-name=ferry-{}", block.block);
        let _ = writeln!(s, "#SBATCH --output={dir}/{}.%j.out", block.block);
        let _ = writeln!(s, "#SBATCH --nodes={}", c.nodes_per_block);
        let _ = writeln!(s, "#SBATCH --ntasks={}", block.workers);
        let _ = writeln!(s, "#SBATCH --time={}", c.walltime.trim());
        if let Some(p) = &c.partition {
            let _ = writeln!(s, "#SBATCH --partition={p}");
        }
        if let Some(a) = &c.account {
            let _ = writeln!(s, "#SBATCH --account={a}");
        }
        if let Some(q) = &c.qos {
            let _ = writeln!(s, "#SBATCH --qos={q}");
        }
        for o in &c.scheduler_options {
            let o = o.trim();
            let o = o.strip_prefix("#SBATCH").unwrap_or(o).trim();
            let _ = writeln!(s, "#SBATCH {o}");
        }
        s.push_str("set -e\n");
        if !c.worker_init.trim().is_empty() {
            s.push_str(c.worker_init.trim_end());
            s.push('\n');
        }
        for (k, v) in &block.env {
            let _ = writeln!(s, "export {k}={}", quote(v));
        }
        let launcher: Vec<String> = c.launcher.iter().map(|a| quote(a)).collect();
        let command: Vec<String> = block.command.iter().map(|a| quote(a)).collect();
        let _ = writeln!(
            s,
            "exec {} --ntasks={} {}",
            launcher.join(" "),
            block.workers,
            command.join(" ")
        );
        s
    }

    async fn sbatch(&self, block: &BlockSpec) -> anyhow::Result<JobId> {
        std::fs::create_dir_all(&block.work_dir).with_context(|| {
            format!(
                "cannot make the block directory `{}`",
                block.work_dir.display()
            )
        })?;
        let path = block.work_dir.join(format!("{}.sbatch", block.block));
        std::fs::write(&path, self.script(block))
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        let out = run("sbatch", &["--parsable".as_ref(), path.as_os_str()]).await?;
        parse_sbatch(&out)
    }

    async fn states(&self, jobs: &[JobId]) -> anyhow::Result<Vec<JobState>> {
        let listed = run(
            "squeue",
            &[
                "--me".as_ref(),
                "--noheader".as_ref(),
                "--states=all".as_ref(),
                "--format=%i|%T".as_ref(),
            ],
        )
        .await?;
        let queue = parse_pairs(&listed);
        let mut states = Vec::with_capacity(jobs.len());
        for job in jobs {
            let state = match queue.iter().find(|(id, _)| id == &job.0) {
                Some((_, s)) => slurm_state(s),
                None => self.left_queue(job).await,
            };
            states.push(state);
        }
        Ok(states)
    }

    /// A job squeue no longer lists: sacct has its end where accounting
    /// is kept, scontrol for a while after it ended where it is not.
    async fn left_queue(&self, job: &JobId) -> JobState {
        let id = job.0.as_str();
        if let Ok(out) = run(
            "sacct",
            &[
                "--noheader".as_ref(),
                "--parsable2".as_ref(),
                "--allocations".as_ref(),
                "--format=JobID,State".as_ref(),
                format!("--jobs={id}").as_ref(),
            ],
        )
        .await
            && let Some((_, s)) = parse_pairs(&out).into_iter().find(|(j, _)| j == id)
        {
            return slurm_state(&s);
        }
        if let Ok(out) = run(
            "scontrol",
            &[
                "--oneliner".as_ref(),
                "show".as_ref(),
                "job".as_ref(),
                id.as_ref(),
            ],
        )
        .await
            && let Some(s) = scontrol_state(&out)
        {
            return slurm_state(s);
        }
        JobState::Ended(JobEnd::Vanished)
    }
}

impl Provider for SlurmProvider {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    fn submit<'a>(&'a self, block: &'a BlockSpec) -> BoxFuture<'a, anyhow::Result<JobId>> {
        self.sbatch(block).boxed()
    }

    fn status<'a>(&'a self, jobs: &'a [JobId]) -> BoxFuture<'a, anyhow::Result<Vec<JobState>>> {
        self.states(jobs).boxed()
    }

    fn cancel<'a>(&'a self, job: &'a JobId) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            run("scancel", &[job.0.as_ref()]).await?;
            Ok(())
        }
        .boxed()
    }
}

/// Runs a Slurm command; its stdout, or an error with what it said.
async fn run(program: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run `{program}` (is Slurm installed here?)"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        bail!("`{program}` failed ({}): {}", out.status, said.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sbatch --parsable` prints `<id>` or `<id>;<cluster>`.
fn parse_sbatch(out: &str) -> anyhow::Result<JobId> {
    let id = out.trim().split(';').next().unwrap_or_default().trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        bail!("sbatch printed no job id: `{}`", out.trim());
    }
    Ok(JobId(id.to_owned()))
}

/// `id|STATE` lines.
fn parse_pairs(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once('|')?;
            Some((id.trim().to_owned(), state.trim().to_owned()))
        })
        .collect()
}

/// `JobState=TIMEOUT` in `scontrol --oneliner show job`.
fn scontrol_state(out: &str) -> Option<&str> {
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix("JobState="))
}

/// A Slurm job state (`squeue %T`, `sacct State`; sacct may add `by <uid>`).
fn slurm_state(s: &str) -> JobState {
    let word = s.split_whitespace().next().unwrap_or_default();
    match word.to_ascii_uppercase().as_str() {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" => {
            JobState::Pending
        }
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT" => {
            JobState::Running
        }
        "COMPLETED" => JobState::Ended(JobEnd::Completed),
        "CANCELLED" => JobState::Ended(JobEnd::Cancelled),
        "TIMEOUT" | "DEADLINE" => JobState::Ended(JobEnd::TimedOut),
        other => JobState::Ended(JobEnd::Failed(other.to_ascii_lowercase())),
    }
}

/// Single quotes for the shell.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether Slurm's commands are on this machine's PATH.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join("sbatch").is_file()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn block() -> BlockSpec {
        BlockSpec {
            block: "gpu-3".into(),
            workers: 4,
            command: vec![
                "/opt/ferry/bin/ferry-endpoint".into(),
                "--name".into(),
                "hpc lab".into(),
            ],
            env: BTreeMap::from([
                ("FERRY_BLOCK".to_owned(), "gpu-3".to_owned()),
                (
                    "FERRY_ENDPOINT_CREDENTIAL".to_owned(),
                    "it's secret".to_owned(),
                ),
            ]),
            work_dir: "/scratch/ferry".into(),
        }
    }

    #[test]
    fn the_script_carries_every_setting() {
        let p = SlurmProvider::new(SlurmConfig {
            partition: Some("gpu".into()),
            account: Some("astro".into()),
            walltime: "00:30:00".into(),
            nodes_per_block: 2,
            worker_init: "module load cuda\nsource ~/env/bin/activate\n".into(),
            scheduler_options: vec!["#SBATCH --gres=gpu:1".into(), "--mem=8G".into()],
            ..SlurmConfig::default()
        })
        .unwrap();
        let s = p.script(&block());
        let expected = "#!/bin/bash
#SBATCH --job-name=ferry-gpu-3
#SBATCH --output=/scratch/ferry/gpu-3.%j.out
#SBATCH --nodes=2
#SBATCH --ntasks=4
#SBATCH --time=00:30:00
#SBATCH --partition=gpu
#SBATCH --account=astro
#SBATCH --gres=gpu:1
#SBATCH --mem=8G
set -e
module load cuda
source ~/env/bin/activate
export FERRY_BLOCK=gpu-3
export FERRY_ENDPOINT_CREDENTIAL='it'\\''s secret'
exec srun --ntasks=4 /opt/ferry/bin/ferry-endpoint --name 'hpc lab'
";
        assert_eq!(s, expected);
    }

    #[test]
    fn slurm_output_is_read() {
        assert_eq!(parse_sbatch("1234\n").unwrap(), JobId("1234".into()));
        assert_eq!(parse_sbatch("77;cluster-a\n").unwrap(), JobId("77".into()));
        let e = parse_sbatch("sbatch: error: Batch job submission failed").unwrap_err();
        assert!(e.to_string().contains("no job id"), "{e}");
        let q = parse_pairs("12|RUNNING\n13|PENDING\n\n14|TIMEOUT\n");
        assert_eq!(q.len(), 3);
        assert_eq!(slurm_state(&q[0].1), JobState::Running);
        assert_eq!(slurm_state(&q[1].1), JobState::Pending);
        assert_eq!(slurm_state(&q[2].1), JobState::Ended(JobEnd::TimedOut));
        assert_eq!(
            slurm_state("CANCELLED by 0"),
            JobState::Ended(JobEnd::Cancelled)
        );
        assert_eq!(
            slurm_state("NODE_FAIL"),
            JobState::Ended(JobEnd::Failed("node_fail".into()))
        );
        assert_eq!(
            scontrol_state(
                "JobId=9 JobName=ferry-b-1 UserId=root(0) JobState=TIMEOUT Reason=TimeLimit"
            ),
            Some("TIMEOUT")
        );
    }

    #[test]
    fn impossible_settings_are_named() {
        let e = SlurmProvider::new(SlurmConfig {
            nodes_per_block: 0,
            ..SlurmConfig::default()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("nodes_per_block"), "{e}");
        let t: SlurmConfig =
            toml::from_str("walltime = \"00:05:00\"\npartition = \"debug\"").unwrap();
        assert_eq!(t.partition.as_deref(), Some("debug"));
        assert_eq!(t.nodes_per_block, 1);
        let e = toml::from_str::<SlurmConfig>("partiton = \"debug\"").unwrap_err();
        assert!(e.to_string().contains("partiton"), "{e}");
    }
}
