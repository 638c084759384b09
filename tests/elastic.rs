//! Elastic endpoints across real processes: `ferry endpoint start` with a
//! `[provider]` is a manager that starts blocks of worker agents as tasks
//! queue, and drains and ends them when idle; on local processes, and on a
//! real Slurm where one runs (under `CI=true` it must).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::*;
use ferry_client::Client;
use ferry_proto::v1::{EndpointStatus, StatusResponse};
use ferry_testkit::guest_bytes;

/// The very estimator the `pi` component is built from, for checking answers.
use pi_estimate as estimate;

/// Slurm's jobs are the machine's, not a test's: one test at a time.
static SLURM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a manager for endpoint `name` with this `[provider]` section.
fn manager(dir: &Path, port: u16, name: &str, provider: &str) -> Proc {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\nservice = \"http://127.0.0.1:{port}\"\ngpu = \"none\"\n\
             cache_dir = \"{}\"\n{provider}",
            dir.join("cache").display()
        ),
    )
    .unwrap();
    Proc(
        ferry(&["endpoint", "start", "--config", config.to_str().unwrap()])
            .spawn()
            .unwrap(),
    )
}

/// Stops a manager as a person or systemd would, and waits for it: it
/// cancels the blocks it holds.
fn stop(p: &mut Proc) {
    let _ = Command::new("kill")
        .args(["-INT", &p.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the manager did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn endpoint_of<'a>(s: &'a StatusResponse, name: &str) -> Option<&'a EndpointStatus> {
    s.endpoints.iter().find(|e| e.name == name)
}

/// Polls `ferry status` until `done` holds of the endpoint.
async fn until(
    client: &Client,
    name: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&EndpointStatus) -> bool,
) -> EndpointStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = client.status().await.unwrap();
        if let Some(e) = endpoint_of(&s, name)
            && done(e)
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last seen {:?}",
            endpoint_of(&s, name)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A service with its admin client, and pi registered.
async fn fabric(dir: &Path) -> (u16, Proc, Client, String) {
    let port = free_port();
    let service = serve(&dir.join("data"), port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        if let Ok(c) = client(port).await
            && c.status().await.is_ok()
        {
            break c;
        }
        assert!(Instant::now() < deadline, "the service did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pi = client.register(&guest_bytes("pi")).await.unwrap().id;
    (port, service, client, pi)
}

/// Submits `n` pi tasks to `endpoint` once its manager has registered it,
/// and checks every answer; returns the task ids.
async fn burst(client: &Client, endpoint: &str, pi: &str, n: u64, samples: u64) -> Vec<String> {
    until(
        client,
        endpoint,
        Duration::from_secs(60),
        "the manager's first report",
        |e| e.manager_seen_ms > 0,
    )
    .await;
    let seeds: Vec<u64> = (0..n).collect();
    let futures = client
        .submit_batch::<_, f64>(endpoint, pi, "pi", seeds.iter().map(|&s| (samples, s)))
        .await
        .unwrap();
    let ids: Vec<String> = futures.iter().map(|f| f.task_id().to_owned()).collect();
    for (seed, id) in seeds.iter().zip(&ids) {
        let v: f64 = tokio::time::timeout(Duration::from_secs(300), client.result(id))
            .await
            .expect("result in time")
            .unwrap();
        assert_eq!(v, estimate::pi(samples, *seed));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_manager_grows_with_a_burst_then_drains_and_ends_its_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _service, client, pi) = fabric(dir.path()).await;
    let mut m = manager(
        dir.path(),
        port,
        "elastic",
        "[provider]\nkind = \"local\"\nmin_blocks = 0\nmax_blocks = 2\nworker_slots = 1\n\
         max_idletime = \"2s\"\nperiod = \"200ms\"\n",
    );
    // Nothing queued, no block: min_blocks is 0.
    let idle = until(
        &client,
        "elastic",
        Duration::from_secs(60),
        "the manager's report",
        |e| e.manager_seen_ms > 0,
    )
    .await;
    assert_eq!((idle.provider.as_str(), idle.blocks.len()), ("local", 0));
    let ids = burst(&client, "elastic", &pi, 40, 2_000_000).await;
    let s = client.status().await.unwrap();
    let e = endpoint_of(&s, "elastic").unwrap();
    assert!(e.tasks_run >= 40, "{e:?}");
    for id in &ids {
        let t = client.task(id).await.unwrap();
        assert_eq!((t.attempts, t.lost), (0, 0), "task {id} ran once");
    }
    // Idle past max_idletime: drained, and every block ended.
    let gone = until(
        &client,
        "elastic",
        Duration::from_secs(60),
        "scale-in",
        |e| e.blocks.is_empty() && e.workers.is_empty(),
    )
    .await;
    assert_eq!(gone.sessions, 0);
    stop(&mut m);
}

/// Samples of a task that runs for seconds, so that it is still running
/// when its worker is drained.
const LONG: u64 = 800_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_finishes_the_task_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _service, client, pi) = fabric(dir.path()).await;
    let mut m = manager(
        dir.path(),
        port,
        "draining",
        "[provider]\nkind = \"local\"\nmin_blocks = 1\nmax_blocks = 1\nworker_slots = 1\n\
         max_idletime = \"1h\"\nperiod = \"200ms\"\n",
    );
    let e = until(
        &client,
        "draining",
        Duration::from_secs(60),
        "a worker",
        |e| e.workers.len() == 1,
    )
    .await;
    let block = e.workers[0].block.clone();
    assert!(block.starts_with("draining-"), "{block}");
    // `ferry status` shows the block, its job and its worker.
    let e = until(
        &client,
        "draining",
        Duration::from_secs(60),
        "the block running",
        |e| {
            e.blocks
                .iter()
                .any(|b| b.id == block && b.phase == "running")
        },
    )
    .await;
    let shown = command()
        .args(["status", "--service", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("draining (local provider"), "{shown}");
    let row = shown
        .lines()
        .find(|l| l.contains(&block) && l.contains("running"))
        .unwrap_or_else(|| panic!("no row for {block}: {shown}"));
    assert!(row.contains(&e.blocks[0].job), "{row}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&block) && l.contains("serving")),
        "{shown}"
    );
    // A long task, held by the worker when the drain comes.
    let long = client
        .submit::<_, f64>("draining", &pi, "pi", &(LONG, 7u64))
        .await
        .unwrap();
    until(
        &client,
        "draining",
        Duration::from_secs(60),
        "the task held",
        |e| e.in_flight == 1,
    )
    .await;
    let mut raw = ferry_proto::v1::endpoints_client::EndpointsClient::new(channel(port).await);
    let told = raw
        .drain(ferry_proto::v1::DrainRequest {
            name: "draining".into(),
            block: block.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(told.workers, 1);
    let drained_at = ferry_proto::now_ms();
    let long_id = long.task_id().to_owned();
    let v: f64 = tokio::time::timeout(Duration::from_secs(300), long)
        .await
        .expect("result in time")
        .unwrap();
    assert_eq!(v, estimate::pi(LONG, 7));
    let t = client.task(&long_id).await.unwrap();
    assert_eq!((t.attempts, t.lost), (0, 0), "it ran once, to its end");
    let finished = t.history.last().map_or(0, |h| h.at_ms);
    assert!(
        finished >= drained_at,
        "the task ended before the drain came; make LONG longer"
    );
    // The worker left once its task was answered.
    until(
        &client,
        "draining",
        Duration::from_secs(60),
        "the worker's exit",
        |e| !e.workers.iter().any(|w| w.block == block),
    )
    .await;
    stop(&mut m);
}

/// Whether Slurm runs here; under `CI=true` it must.
fn slurm_or_skip(test: &str) -> bool {
    if ferry_scale::slurm_available() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: Slurm must run under CI (.ci/slurm starts it)"
    );
    eprintln!("skipping {test}: no Slurm here (`sinfo` fails; .ci/slurm starts one)");
    false
}

/// Job ids of this endpoint's blocks in `squeue`.
fn squeue(name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--format=%i %j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("ferry-{name}-")))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Cancels what a failed test left in Slurm.
struct Scancel(&'static str);

impl Drop for Scancel {
    fn drop(&mut self) {
        for job in squeue(self.0) {
            let _ = Command::new("scancel").arg(job).status();
        }
    }
}

fn slurm_provider(walltime: &str, dir: &Path) -> String {
    format!(
        "[provider]\nkind = \"slurm\"\nmin_blocks = 0\nmax_blocks = 2\nworkers_per_block = 1\n\
         worker_slots = 1\nmax_idletime = \"3s\"\nperiod = \"500ms\"\nwork_dir = \"{}\"\n\
         [provider.slurm]\npartition = \"debug\"\nwalltime = \"{walltime}\"\n",
        dir.join("blocks").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_slurm_a_burst_gets_blocks_that_leave_squeue_when_idle() {
    if !slurm_or_skip("on_slurm_a_burst_gets_blocks_that_leave_squeue_when_idle") {
        return;
    }
    let _one = SLURM.lock().await;
    let _cleanup = Scancel("hpc");
    let dir = tempfile::tempdir().unwrap();
    let (port, _service, client, pi) = fabric(dir.path()).await;
    let mut m = manager(
        dir.path(),
        port,
        "hpc",
        &slurm_provider("00:10:00", dir.path()),
    );
    let ids = burst(&client, "hpc", &pi, 200, 1_000_000).await;
    // The workers joined as Slurm jobs' steps, under their blocks.
    let s = client.status().await.unwrap();
    let e = endpoint_of(&s, "hpc").unwrap();
    assert!(e.tasks_run >= 200, "{e:?}");
    for id in &ids {
        let t = client.task(id).await.unwrap();
        assert_eq!((t.attempts, t.lost), (0, 0), "task {id} ran once");
    }
    let seen = until(&client, "hpc", Duration::from_secs(120), "scale-in", |e| {
        e.blocks.is_empty() && e.workers.is_empty()
    })
    .await;
    assert_eq!(seen.sessions, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !squeue("hpc").is_empty() {
        assert!(
            Instant::now() < deadline,
            "jobs left in squeue: {:?}",
            squeue("hpc")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(&mut m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_slurm_a_block_killed_mid_run_loses_no_task() {
    if !slurm_or_skip("on_slurm_a_block_killed_mid_run_loses_no_task") {
        return;
    }
    let _one = SLURM.lock().await;
    let _cleanup = Scancel("wall");
    let dir = tempfile::tempdir().unwrap();
    let (port, _service, client, pi) = fabric(dir.path()).await;
    let mut m = manager(
        dir.path(),
        port,
        "wall",
        &slurm_provider("00:10:00", dir.path()),
    );
    until(
        &client,
        "wall",
        Duration::from_secs(60),
        "the manager's report",
        |e| e.manager_seen_ms > 0,
    )
    .await;
    let samples = 20_000_000u64;
    let seeds: Vec<u64> = (0..6).collect();
    let futures = client
        .submit_batch::<_, f64>("wall", &pi, "pi", seeds.iter().map(|&s| (samples, s)))
        .await
        .unwrap();
    let ids: Vec<String> = futures.iter().map(|f| f.task_id().to_owned()).collect();
    // Once a worker holds a task, its block's job is ended under it, as
    // Slurm ends one at its walltime.
    let e = until(
        &client,
        "wall",
        Duration::from_secs(120),
        "a task held",
        |e| e.workers.iter().any(|w| w.in_flight > 0),
    )
    .await;
    let block = e
        .workers
        .iter()
        .find(|w| w.in_flight > 0)
        .unwrap()
        .block
        .clone();
    let job = e
        .blocks
        .iter()
        .find(|b| b.id == block)
        .map(|b| b.job.clone())
        .expect("the block's job is reported");
    assert!(
        Command::new("scancel")
            .arg(&job)
            .status()
            .unwrap()
            .success()
    );
    for (seed, f) in seeds.iter().zip(futures) {
        let v: f64 = tokio::time::timeout(Duration::from_secs(300), f)
            .await
            .expect("result in time")
            .unwrap();
        assert_eq!(v, estimate::pi(samples, *seed));
    }
    // The task the killed block held came back through its lease and ran
    // again elsewhere; no other did.
    let mut lost = 0;
    for id in &ids {
        lost += client.task(id).await.unwrap().lost;
    }
    assert!(lost >= 1, "the killed block held a task");
    stop(&mut m);
}
