//! The Slurm provider against a real single-node Slurm (`bash .ci/slurm`
//! starts one from Debian's packages): blocks become batch jobs whose
//! workers `srun` starts, their states are read back as Slurm tells them,
//! a cancel ends them, a walltime ends them as timed out, and a request
//! Slurm refuses is named in Slurm's own words.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_scale::{BlockSpec, JobEnd, JobId, JobState, Provider, SlurmConfig, SlurmProvider};

/// One test's jobs at a time: the node has only this machine's cores, and a
/// block of two workers would wait behind another test's block.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Cancels a test's job however the test ends, so that none is left queued.
struct Scancel(JobId);

impl Drop for Scancel {
    fn drop(&mut self) {
        let _ = std::process::Command::new("scancel")
            .arg(&self.0.0)
            .status();
    }
}

/// Whether a Slurm answers here with a usable node; under `CI=true` it must.
fn slurm_or_skip(test: &str) -> bool {
    let up = std::process::Command::new("sinfo")
        .args(["--noheader", "--format=%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| matches!(l.trim(), "idle" | "mixed" | "allocated"))
        });
    if !up {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "{test}: no Slurm answers here, and CI=true needs one (bash .ci/slurm starts it)"
        );
        println!("{test}: skipped, no Slurm answers here (bash .ci/slurm starts one)");
    }
    up
}

fn block(dir: &Path, name: &str, workers: u32, script: &str) -> BlockSpec {
    BlockSpec {
        block: name.to_owned(),
        workers,
        command: vec!["bash".into(), "-c".into(), script.into()],
        env: BTreeMap::from([("FERRY_BLOCK".to_owned(), name.to_owned())]),
        work_dir: dir.to_owned(),
    }
}

/// Polls the job until `done` holds for its state, for at most `within`.
async fn until(
    p: &SlurmProvider,
    job: &JobId,
    within: Duration,
    done: impl Fn(&JobState) -> bool,
) -> JobState {
    let deadline = Instant::now() + within;
    loop {
        let state = p.status(std::slice::from_ref(job)).await.unwrap().remove(0);
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} still {state:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lines the block's workers wrote to its Slurm output file.
fn output(dir: &Path, name: &str, job: &JobId) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.{job}.out"))).unwrap_or_default()
}

#[tokio::test]
async fn a_block_runs_its_workers_under_srun_and_a_cancel_ends_it() {
    if !slurm_or_skip("a_block_runs_its_workers_under_srun_and_a_cancel_ends_it") {
        return;
    }
    let _node = NODE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let p = SlurmProvider::new(SlurmConfig::default()).unwrap();
    let name = format!("cancel-{}", std::process::id());
    let b = block(
        dir.path(),
        &name,
        2,
        "echo worker $SLURM_PROCID of block $FERRY_BLOCK; exec sleep 600",
    );
    let job = p.submit(&b).await.unwrap();
    let _cancel = Scancel(job.clone());
    until(&p, &job, Duration::from_secs(60), |s| {
        *s == JobState::Running
    })
    .await;
    // Both workers started, each with the block's environment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while output(dir.path(), &name, &job).lines().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "workers wrote: {:?}",
            output(dir.path(), &name, &job)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = output(dir.path(), &name, &job);
    for w in 0..2 {
        assert!(
            out.contains(&format!("worker {w} of block {name}")),
            "{out}"
        );
    }
    p.cancel(&job).await.unwrap();
    let end = until(&p, &job, Duration::from_secs(60), |s| {
        matches!(s, JobState::Ended(_))
    })
    .await;
    assert_eq!(end, JobState::Ended(JobEnd::Cancelled));
}

#[tokio::test]
async fn a_block_past_its_walltime_ends_as_timed_out() {
    if !slurm_or_skip("a_block_past_its_walltime_ends_as_timed_out") {
        return;
    }
    let _node = NODE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Slurm's shortest time limit is a minute, enforced some seconds late.
    let p = SlurmProvider::new(SlurmConfig {
        walltime: "1".into(),
        ..SlurmConfig::default()
    })
    .unwrap();
    let name = format!("walltime-{}", std::process::id());
    let job = p
        .submit(&block(dir.path(), &name, 1, "exec sleep 600"))
        .await
        .unwrap();
    let _cancel = Scancel(job.clone());
    let end = until(&p, &job, Duration::from_secs(240), |s| {
        matches!(s, JobState::Ended(_))
    })
    .await;
    assert_eq!(end, JobState::Ended(JobEnd::TimedOut));
}

#[tokio::test]
async fn a_request_slurm_refuses_is_named_in_its_words() {
    if !slurm_or_skip("a_request_slurm_refuses_is_named_in_its_words") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = SlurmProvider::new(SlurmConfig {
        partition: Some("no-such-partition".into()),
        ..SlurmConfig::default()
    })
    .unwrap();
    let e = p
        .submit(&block(dir.path(), "refused", 1, "true"))
        .await
        .unwrap_err();
    let said = format!("{e:#}");
    assert!(said.contains("sbatch"), "{said}");
    assert!(said.contains("invalid partition"), "{said}");
    // An unknown job is one Slurm has no word of.
    let gone = p.status(&[JobId("999999".into())]).await.unwrap();
    assert_eq!(gone, vec![JobState::Ended(JobEnd::Vanished)]);
}
