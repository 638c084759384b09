//! The local provider: a block is child processes on this machine. They
//! are killed if the manager exits, so no block outlives it.

use std::collections::HashMap;
use std::fs::File;
use std::process::Stdio;
use std::sync::Mutex;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::process::{Child, Command};

use crate::provider::{BlockSpec, JobEnd, JobId, JobState, Provider};

/// Runs blocks as child processes.
#[derive(Default)]
pub struct LocalProvider {
    jobs: Mutex<HashMap<JobId, LocalJob>>,
}

struct LocalJob {
    children: Vec<Child>,
    cancelled: bool,
    /// The first failing exit seen, kept after its child is reaped.
    failed: Option<String>,
}

impl LocalProvider {
    pub fn new() -> Self {
        LocalProvider::default()
    }

    fn start(&self, block: &BlockSpec) -> anyhow::Result<JobId> {
        let (program, args) = block
            .command
            .split_first()
            .context("a block needs a worker command")?;
        std::fs::create_dir_all(&block.work_dir).with_context(|| {
            format!(
                "cannot make the block directory `{}`",
                block.work_dir.display()
            )
        })?;
        let mut children = Vec::new();
        for i in 0..block.workers {
            let log_path = block.work_dir.join(format!("{}.{i}.log", block.block));
            let log = File::create(&log_path)
                .with_context(|| format!("cannot write `{}`", log_path.display()))?;
            let child = Command::new(program)
                .args(args)
                .envs(&block.env)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start the worker `{program}`"))?;
            children.push(child);
        }
        let id = JobId(format!("local-{}", block.block));
        self.jobs.lock().expect("local jobs").insert(
            id.clone(),
            LocalJob {
                children,
                cancelled: false,
                failed: None,
            },
        );
        Ok(id)
    }

    fn state(job: &mut LocalJob) -> JobState {
        let mut running = false;
        for c in &mut job.children {
            match c.try_wait() {
                Ok(None) => running = true,
                Ok(Some(status)) if !status.success() && job.failed.is_none() => {
                    job.failed = Some(format!("a worker exited with {status}"));
                }
                Ok(Some(_)) => {}
                Err(e) => job.failed = Some(format!("cannot wait for a worker: {e}")),
            }
        }
        if running {
            JobState::Running
        } else if job.cancelled {
            JobState::Ended(JobEnd::Cancelled)
        } else if let Some(why) = &job.failed {
            JobState::Ended(JobEnd::Failed(why.clone()))
        } else {
            JobState::Ended(JobEnd::Completed)
        }
    }
}

impl Provider for LocalProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn submit<'a>(&'a self, block: &'a BlockSpec) -> BoxFuture<'a, anyhow::Result<JobId>> {
        async move { self.start(block) }.boxed()
    }

    fn status<'a>(&'a self, jobs: &'a [JobId]) -> BoxFuture<'a, anyhow::Result<Vec<JobState>>> {
        async move {
            let mut held = self.jobs.lock().expect("local jobs");
            let states = jobs
                .iter()
                .map(|id| match held.get_mut(id) {
                    Some(job) => Self::state(job),
                    None => JobState::Ended(JobEnd::Vanished),
                })
                .collect::<Vec<_>>();
            // Ended jobs are forgotten once told.
            for (id, s) in jobs.iter().zip(&states) {
                if matches!(s, JobState::Ended(_)) {
                    held.remove(id);
                }
            }
            Ok(states)
        }
        .boxed()
    }

    fn cancel<'a>(&'a self, job: &'a JobId) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let mut held = self.jobs.lock().expect("local jobs");
            if let Some(j) = held.get_mut(job) {
                j.cancelled = true;
                for c in &mut j.children {
                    // Already gone is fine.
                    let _ = c.start_kill();
                }
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(dir: &std::path::Path, script: &str, workers: u32) -> BlockSpec {
        BlockSpec {
            block: "b-1".into(),
            workers,
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("FERRY_BLOCK".to_owned(), "b-1".to_owned())]),
            work_dir: dir.to_owned(),
        }
    }

    async fn wait_ended(p: &LocalProvider, job: &JobId) -> JobState {
        loop {
            let s = p.status(std::slice::from_ref(job)).await.unwrap().remove(0);
            if matches!(s, JobState::Ended(_)) {
                return s;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_block_runs_its_workers_with_their_environment() {
        let dir = tempfile_dir();
        let p = LocalProvider::new();
        let job = p
            .submit(&spec(dir.path(), "echo \"block $FERRY_BLOCK\"", 2))
            .await
            .unwrap();
        assert_eq!(
            wait_ended(&p, &job).await,
            JobState::Ended(JobEnd::Completed)
        );
        for i in 0..2 {
            let log = std::fs::read_to_string(dir.path().join(format!("b-1.{i}.log"))).unwrap();
            assert_eq!(log, "block b-1\n");
        }
        // Told once, then forgotten.
        assert_eq!(
            p.status(&[job]).await.unwrap(),
            vec![JobState::Ended(JobEnd::Vanished)]
        );
    }

    #[tokio::test]
    async fn a_failing_worker_fails_its_block_and_a_cancel_kills_it() {
        let dir = tempfile_dir();
        let p = LocalProvider::new();
        let job = p.submit(&spec(dir.path(), "exit 3", 1)).await.unwrap();
        match wait_ended(&p, &job).await {
            JobState::Ended(JobEnd::Failed(why)) => assert!(why.contains("3"), "{why}"),
            other => panic!("{other:?}"),
        }
        let job = p.submit(&spec(dir.path(), "sleep 600", 1)).await.unwrap();
        assert_eq!(
            p.status(std::slice::from_ref(&job)).await.unwrap(),
            vec![JobState::Running]
        );
        p.cancel(&job).await.unwrap();
        assert_eq!(
            wait_ended(&p, &job).await,
            JobState::Ended(JobEnd::Cancelled)
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let dir = tempfile_dir();
        let p = LocalProvider::new();
        let mut s = spec(dir.path(), "", 1);
        s.command = vec!["/nonexistent/ferry-endpoint".into()];
        let e = p.submit(&s).await.unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot start the worker `/nonexistent/ferry-endpoint`"),
            "{e:#}"
        );
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}
