//! The manager with the local provider's real child processes and a fabric
//! of the test's own, whose drain tells a worker to exit through a file, on
//! paused time: what a period asks for, and what it does.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::{Instant, advance};

use super::*;
use crate::local::LocalProvider;
use crate::settings::Settings;
use crate::strategy::WorkerLoad;

/// The service as the test plays it: the load it reports and the drains it
/// was asked for.
struct TestFabric {
    load: Mutex<Option<Load>>,
    drained: Mutex<Vec<String>>,
    dir: PathBuf,
}

impl TestFabric {
    fn new(dir: &Path) -> Self {
        TestFabric {
            load: Mutex::new(Some(Load::default())),
            drained: Mutex::new(Vec::new()),
            dir: dir.to_owned(),
        }
    }

    fn set(&self, queued: u64, workers: &[(&str, u32)]) {
        let workers: Vec<WorkerLoad> = workers
            .iter()
            .map(|(b, n)| WorkerLoad {
                block: (*b).to_owned(),
                in_flight: *n,
            })
            .collect();
        let running = workers.iter().map(|w| u64::from(w.in_flight)).sum();
        *self.load.lock().unwrap() = Some(Load {
            queued,
            running,
            workers,
        });
    }
}

impl Fabric for TestFabric {
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Load>> {
        let load = self.load.lock().unwrap().clone();
        async move { load.ok_or_else(|| anyhow::anyhow!("the service is unreachable")) }.boxed()
    }

    fn drain<'a>(&'a self, block: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            self.drained.lock().unwrap().push(block.to_owned());
            std::fs::write(self.dir.join(format!("{block}.drain")), b"")?;
            Ok(())
        }
        .boxed()
    }
}

fn settings() -> Settings {
    Settings {
        max_blocks: 2,
        workers_per_block: 1,
        worker_slots: 2,
        max_idletime: Duration::from_secs(10),
        period: Duration::from_secs(1),
        ..Settings::default()
    }
}

/// A worker that says it started, waits for its block's drain, then says
/// it is leaving and exits.
fn workers(dir: &Path) -> Workers {
    Workers {
        command: vec![
            "sh".into(),
            "-c".into(),
            r#"touch "$SIGNALS/$FERRY_BLOCK.started"
               while [ ! -e "$SIGNALS/$FERRY_BLOCK.drain" ]; do sleep 0.02; done
               touch "$SIGNALS/$FERRY_BLOCK.exiting""#
                .into(),
        ],
        env: BTreeMap::from([("SIGNALS".to_owned(), dir.display().to_string())]),
        work_dir: dir.join("blocks"),
    }
}

/// Waits, in real time, for a file a worker writes.
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn submitted(d: &[Decision]) -> Vec<&str> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Submitted { block, .. } => Some(block.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn blocks_of_real_workers_start_for_a_burst_and_drain_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let fabric = TestFabric::new(dir.path());
    let mut m = Manager::new(
        Strategy::new(settings(), "ep"),
        LocalProvider::new(),
        fabric,
        workers(dir.path()),
    );
    m.fabric().set(3, &[]);
    let d = m.step(Instant::now()).await;
    assert_eq!(submitted(&d), vec!["ep-1", "ep-2"], "{d:?}");
    for d in &d {
        let Decision::Submitted { reason, .. } = d else {
            panic!("{d:?}");
        };
        assert!(reason.contains("3 tasks outstanding"), "{reason}");
    }
    for b in ["ep-1", "ep-2"] {
        wait_for(&dir.path().join(format!("{b}.started")));
    }
    // The workers join and run the burst; nothing more is asked for.
    m.fabric().set(0, &[("ep-1", 2), ("ep-2", 1)]);
    advance(Duration::from_secs(1)).await;
    assert_eq!(m.step(Instant::now()).await, vec![]);
    // Idle, but not yet for max_idletime.
    m.fabric().set(0, &[("ep-1", 0), ("ep-2", 0)]);
    for _ in 0..9 {
        advance(Duration::from_secs(1)).await;
        assert_eq!(m.step(Instant::now()).await, vec![]);
    }
    assert!(m.fabric().drained.lock().unwrap().is_empty());
    // Past it, both are drained; their workers finish and exit.
    let mut drained = Vec::new();
    for _ in 0..3 {
        advance(Duration::from_secs(1)).await;
        drained.extend(m.step(Instant::now()).await);
    }
    assert!(
        drained
            .iter()
            .all(|d| matches!(d, Decision::Drained { reason, .. } if reason.contains("idle for"))),
        "{drained:?}"
    );
    assert_eq!(*m.fabric().drained.lock().unwrap(), vec!["ep-1", "ep-2"]);
    for b in ["ep-1", "ep-2"] {
        wait_for(&dir.path().join(format!("{b}.exiting")));
    }
    // Their jobs end as completed, as the manager expected.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut ended = Vec::new();
    while ended.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{ended:?}");
        std::thread::sleep(Duration::from_millis(10));
        advance(Duration::from_secs(1)).await;
        for d in m.step(Instant::now()).await {
            match d {
                Decision::Ended { end, expected, .. } => ended.push((end, expected)),
                other => panic!("only ends were due: {other:?}"),
            }
        }
    }
    assert_eq!(ended, vec![(JobEnd::Completed, true); 2]);
    assert_eq!(m.strategy().blocks().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_cannot_start_is_named_and_backed_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = workers(dir.path());
    w.command = vec!["/nonexistent/ferry-endpoint".into()];
    let mut m = Manager::new(
        Strategy::new(settings(), "ep"),
        LocalProvider::new(),
        TestFabric::new(dir.path()),
        w,
    );
    m.fabric().set(1, &[]);
    let d = m.step(Instant::now()).await;
    let [Decision::SubmitFailed { block, error }] = d.as_slice() else {
        panic!("{d:?}");
    };
    assert_eq!(block, "ep-1");
    assert!(error.contains("/nonexistent/ferry-endpoint"), "{error}");
    // The next period waits out the backoff instead of asking again.
    advance(Duration::from_secs(1)).await;
    assert_eq!(m.step(Instant::now()).await, vec![]);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_service_changes_nothing_and_a_stop_cancels_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manager::new(
        Strategy::new(settings(), "ep"),
        LocalProvider::new(),
        TestFabric::new(dir.path()),
        workers(dir.path()),
    );
    m.fabric().set(4, &[]);
    assert_eq!(submitted(&m.step(Instant::now()).await).len(), 2);
    *m.fabric().load.lock().unwrap() = None;
    advance(Duration::from_secs(60)).await;
    let d = m.step(Instant::now()).await;
    assert!(
        matches!(d.as_slice(), [Decision::Unavailable { what: "the endpoint's load", error }] if error.contains("unreachable")),
        "{d:?}"
    );
    assert_eq!(m.strategy().blocks().count(), 2, "nothing let go blind");
    let jobs: Vec<JobId> = m.strategy().jobs().into_iter().map(|(_, j)| j).collect();
    let stopped = m.shutdown().await;
    assert_eq!(stopped.len(), 2);
    assert!(
        stopped.iter().all(
            |d| matches!(d, Decision::Cancelled { reason, .. } if reason.contains("stopping"))
        )
    );
    // The workers, which never saw a drain, are killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for job in jobs {
        loop {
            let s = m
                .provider()
                .status(std::slice::from_ref(&job))
                .await
                .unwrap();
            if s == [crate::provider::JobState::Ended(JobEnd::Cancelled)] {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{job}: {s:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
