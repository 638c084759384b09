//! What a resource manager is asked for: blocks of worker agents, as jobs
//! it names, watches and cancels.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use futures::future::BoxFuture;

/// A job as its resource manager names it: a Slurm job id, a pod's name,
/// a child's pid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job stands, as its resource manager tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for resources.
    Pending,
    Running,
    /// It ended, and will not run again.
    Ended(JobEnd),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Its workers exited of their own accord (drained).
    Completed,
    /// Cancelled, by the manager or by someone else.
    Cancelled,
    /// The resource manager ended it at its walltime.
    TimedOut,
    /// It failed, or its node did: the resource manager's words.
    Failed(String),
    /// The resource manager no longer knows it.
    Vanished,
}

impl fmt::Display for JobEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobEnd::Completed => f.write_str("completed"),
            JobEnd::Cancelled => f.write_str("cancelled"),
            JobEnd::TimedOut => f.write_str("ended at its walltime"),
            JobEnd::Failed(why) => write!(f, "failed ({why})"),
            JobEnd::Vanished => f.write_str("unknown to its resource manager"),
        }
    }
}

/// One block to start: `workers` agents, each run as `command` with `env`
/// added, so that they dial the service under the endpoint's name and
/// credential and say which block they belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSpec {
    /// The block's id, unique to this manager (`FERRY_BLOCK` in the
    /// workers' environment).
    pub block: String,
    pub workers: u32,
    /// The worker's program and arguments.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Where the provider may keep a block's script and its output.
    pub work_dir: PathBuf,
}

/// A resource manager that runs blocks of workers.
pub trait Provider: Send + Sync {
    /// `local`, `slurm`, `kubernetes`.
    fn kind(&self) -> &'static str;

    /// Asks for one block; the job it becomes.
    fn submit<'a>(&'a self, block: &'a BlockSpec) -> BoxFuture<'a, anyhow::Result<JobId>>;

    /// Where each of these jobs stands. A job the resource manager has no
    /// word of is `Ended(Vanished)`.
    fn status<'a>(&'a self, jobs: &'a [JobId]) -> BoxFuture<'a, anyhow::Result<Vec<JobState>>>;

    /// Ends a job (its workers are killed).
    fn cancel<'a>(&'a self, job: &'a JobId) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A provider chosen at run time, from an endpoint's config.
impl Provider for Box<dyn Provider> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn submit<'a>(&'a self, block: &'a BlockSpec) -> BoxFuture<'a, anyhow::Result<JobId>> {
        (**self).submit(block)
    }

    fn status<'a>(&'a self, jobs: &'a [JobId]) -> BoxFuture<'a, anyhow::Result<Vec<JobState>>> {
        (**self).status(jobs)
    }

    fn cancel<'a>(&'a self, job: &'a JobId) -> BoxFuture<'a, anyhow::Result<()>> {
        (**self).cancel(job)
    }
}
