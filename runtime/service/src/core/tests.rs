//! The broker's rules, driven directly on an in-memory store with paused
//! time: no transport, no endpoint process, no component.

use ferry_policy::{Offer, Requirement, Resource, Scope};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::store::MemoryStore;

/// Results and arguments as plain MessagePack ↔ JSON: enough for dataflow
/// between tasks whose values are numbers.
struct PlainCatalog;

impl Catalog for PlainCatalog {
    fn fed_value(
        &self,
        _: &str,
        _: &str,
        result: &[u8],
    ) -> std::result::Result<serde_json::Value, String> {
        rmp_serde::from_slice(result).map_err(|e| e.to_string())
    }
    fn args_from_json(
        &self,
        _: &str,
        _: &str,
        values: &[serde_json::Value],
    ) -> std::result::Result<Vec<u8>, String> {
        rmp_serde::to_vec(values).map_err(|e| e.to_string())
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    broker: Broker,
}

fn rules() -> Rules {
    Rules {
        heartbeat_timeout: Duration::from_secs(60),
        lease_timeout: Duration::from_secs(5),
        max_attempts: 3,
        max_queued_per_endpoint: 100,
        ..Rules::default()
    }
}

fn fixture(rules: Rules) -> Fixture {
    let store = Arc::new(MemoryStore::default());
    let broker = Broker::open(store.clone(), Arc::new(PlainCatalog), rules).unwrap();
    Fixture { store, broker }
}

fn admin() -> Principal {
    Principal::new("root", true, "t0")
}

fn task(id: &str) -> TaskRecord {
    let mut t = TaskRecord::new(id.into(), "pool".into(), "f".into(), "run".into(), 1);
    t.args = vec![0x90];
    t
}

fn hello() -> Hello {
    Hello {
        name: "pool".into(),
        concurrency: 4,
        version: "test".into(),
        ..Hello::default()
    }
}

fn success(a: &Assignment, value: u64) -> Outcome {
    Outcome {
        task_id: a.task_id.clone(),
        lease: a.lease,
        result: Ok(rmp_serde::to_vec(&value).unwrap()),
        started_at_ms: 2,
        finished_at_ms: 3,
        output: TaskOutput::default(),
    }
}

/// Every assignment waiting on a session's outbox.
fn assigned(rx: &mut mpsc::Receiver<ToEndpoint>) -> Vec<Assignment> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        if let ToEndpoint::Tasks(t) = m {
            out.extend(t);
        }
    }
    out
}

fn stored(f: &Fixture, id: &str) -> TaskRecord {
    f.store.task(id).unwrap().expect("stored")
}

#[tokio::test(start_paused = true)]
async fn an_unrenewed_lease_expires_and_its_late_outcome_is_dropped() {
    let f = fixture(rules());
    f.broker.admit(vec![task("t1"), task("t2")]).unwrap();
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(sid, 2).unwrap();
    let first = assigned(&mut rx);
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|a| a.lease == 1));

    // t1 is renewed by heartbeats that list it; t2 is never listed.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(2)).await;
        f.broker.heartbeat(sid, Some(&["t1".to_owned()]));
        f.broker.expire(Instant::now()).unwrap();
    }
    assert_eq!(f.broker.board().leases["t1"].number, 1, "t1 still held");
    let t2 = f.broker.task("t2").unwrap().unwrap();
    assert_eq!(t2.state, TaskState::WaitingForEndpoint, "t2 came back");
    assert_eq!(t2.lost, 1);
    assert_eq!(stored(&f, "t2").lost, 1, "the loss is durable");
    assert_eq!(f.broker.lease_counters().0, 1);

    // Lost once, it runs alone: not beside t1 on this session.
    f.broker.add_credits(sid, 1).unwrap();
    assert!(
        assigned(&mut rx).is_empty(),
        "a suspect waits for an idle session"
    );
    assert_eq!(
        f.broker
            .record_outcomes(sid, vec![success(&first[0], 1)])
            .unwrap(),
        1
    );
    // It goes out again under lease 2; the old run's outcome no longer counts.
    f.broker.add_credits(sid, 1).unwrap();
    let again = assigned(&mut rx);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].task_id.as_str(), again[0].lease), ("t2", 2));
    let stale = &first[1];
    assert_eq!(stale.task_id, "t2");
    assert_eq!(
        f.broker
            .record_outcomes(sid, vec![success(stale, 7)])
            .unwrap(),
        0
    );
    assert_eq!(
        f.broker.task("t2").unwrap().unwrap().state,
        TaskState::Dispatched
    );
    assert_eq!(
        f.broker
            .record_outcomes(sid, vec![success(&again[0], 8)])
            .unwrap(),
        1
    );
    let done = stored(&f, "t2");
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.result, Some(rmp_serde::to_vec(&8u64).unwrap()));
}

#[tokio::test(start_paused = true)]
async fn a_task_that_kills_its_endpoints_fails_after_max_attempts_and_others_finish() {
    let f = fixture(rules());
    f.broker.admit(vec![task("poison")]).unwrap();
    for round in 1..=3u32 {
        let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
        f.broker.add_credits(sid, 1).unwrap();
        let a = assigned(&mut rx);
        assert_eq!(a.len(), 1, "round {round}");
        assert_eq!((a[0].task_id.as_str(), a[0].lease), ("poison", round));
        // The endpoint process dies on it.
        f.broker.session_lost(sid).unwrap();
        assert_eq!(stored(&f, "poison").lost, round);
    }
    let t = stored(&f, "poison");
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert_eq!(e.kind, "endpoint-lost");
    assert!(
        e.message.contains("3 times") && e.message.contains("pool"),
        "{}",
        e.message
    );

    // The next agent of that name is not taken down by it.
    f.broker.admit(vec![task("ok")]).unwrap();
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(sid, 4).unwrap();
    let a = assigned(&mut rx);
    assert_eq!(
        a.iter().map(|a| a.task_id.as_str()).collect::<Vec<_>>(),
        ["ok"]
    );
    f.broker
        .record_outcomes(sid, vec![success(&a[0], 1)])
        .unwrap();
    assert_eq!(stored(&f, "ok").state, TaskState::Succeeded);
}

/// Once lost, a task runs alone: when it takes its endpoint down again, the
/// tasks beside it the first time are not lost with it.
#[tokio::test(start_paused = true)]
async fn a_lost_task_runs_alone_so_bystanders_are_lost_at_most_once() {
    let f = fixture(rules());
    let mut batch = vec![task("poison")];
    batch.extend((0..6).map(|i| task(&format!("b{i}"))));
    f.broker.admit(batch).unwrap();
    let mut crashes = 0;
    // Endpoint processes in turn; each dies when it is handed the poison
    // task, with whatever else it holds, and runs everything else.
    while f.broker.unfinished() > 0 {
        let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
        f.broker.add_credits(sid, 4).unwrap();
        loop {
            let got = assigned(&mut rx);
            if got.is_empty() {
                // Nothing left for it: it leaves, holding nothing.
                f.broker.session_lost(sid).unwrap();
                break;
            }
            if got.iter().any(|a| a.task_id == "poison") {
                if crashes > 0 {
                    assert_eq!(got.len(), 1, "after a loss it runs alone: {got:?}");
                }
                crashes += 1;
                f.broker.session_lost(sid).unwrap();
                break;
            }
            let outcomes = got.iter().map(|a| success(a, 1)).collect();
            f.broker.record_outcomes(sid, outcomes).unwrap();
            f.broker.add_credits(sid, got.len() as u32).unwrap();
        }
        assert!(crashes <= 3, "the poison task fails on its third loss");
    }
    assert_eq!(crashes, 3);
    assert_eq!(stored(&f, "poison").state, TaskState::Failed);
    for i in 0..6 {
        let b = stored(&f, &format!("b{i}"));
        assert_eq!(b.state, TaskState::Succeeded, "b{i}");
        assert!(b.lost <= 1, "b{i} lost {} times", b.lost);
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_session_is_dropped_and_its_tasks_come_back() {
    let f = fixture(Rules {
        heartbeat_timeout: Duration::from_secs(3),
        lease_timeout: Duration::from_secs(60),
        ..rules()
    });
    f.broker.admit(vec![task("t")]).unwrap();
    let (a, mut rx_a) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(a, 1).unwrap();
    assert_eq!(assigned(&mut rx_a).len(), 1);
    let (b, mut rx_b) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(b, 1).unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    f.broker.heartbeat(b, Some(&[]));
    tokio::time::advance(Duration::from_secs(2)).await;
    f.broker.expire(Instant::now()).unwrap();
    // `a` went silent: dropped, and its task went to `b`.
    assert_eq!(f.broker.endpoints()[0].sessions, 1);
    let moved = assigned(&mut rx_b);
    assert_eq!((moved[0].task_id.as_str(), moved[0].lease), ("t", 2));
    assert_eq!(stored(&f, "t").lost, 1);
}

#[tokio::test(start_paused = true)]
async fn a_foreign_session_cannot_report_outcomes_for_tasks_it_does_not_hold() {
    let f = fixture(rules());
    f.broker.admit(vec![task("real")]).unwrap();
    let (real, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(real, 1).unwrap();
    let a = assigned(&mut rx);
    // Another process says Hello with the same name, takes no credits, and
    // makes up a result for the task, with the right lease number even.
    let (rogue, _rx) = f.broker.open_session(hello()).unwrap();
    assert_eq!(
        f.broker
            .record_outcomes(rogue, vec![success(&a[0], 666)])
            .unwrap(),
        0
    );
    // And for a task that does not exist.
    let mut made_up = success(&a[0], 1);
    made_up.task_id = "nope".into();
    assert_eq!(f.broker.record_outcomes(rogue, vec![made_up]).unwrap(), 0);
    assert_eq!(f.broker.lease_counters().1, 2);
    assert_eq!(
        f.broker.task("real").unwrap().unwrap().state,
        TaskState::Dispatched
    );
    f.broker
        .record_outcomes(real, vec![success(&a[0], 42)])
        .unwrap();
    assert_eq!(
        stored(&f, "real").result,
        Some(rmp_serde::to_vec(&42u64).unwrap())
    );
    assert_eq!(
        f.broker.endpoints()[0].tasks_run,
        1,
        "only the real outcome counted"
    );
}

/// Cancel and outcome in both orders: the first wins, and the store, the
/// watchers and the dependents agree.
#[tokio::test(start_paused = true)]
async fn cancel_racing_an_outcome_agrees_in_store_and_watchers_in_both_orders() {
    for cancel_first in [true, false] {
        let f = fixture(rules());
        let mut dependent = task("d");
        dependent.state = TaskState::WaitingForDependencies;
        dependent.history = vec![(TaskState::WaitingForDependencies, 1)];
        dependent.deps = vec!["p".into()];
        dependent.pending_args = Some(r#"[{"$task":"p"}]"#.into());
        f.broker.admit(vec![task("p"), dependent]).unwrap();
        let (wid, mut events) = f.broker.open_watch();
        assert!(matches!(
            f.broker.watch(wid, &admin(), "p").unwrap(),
            Watched::Following
        ));
        let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
        f.broker.add_credits(sid, 1).unwrap();
        let a = assigned(&mut rx);
        if cancel_first {
            assert_eq!(
                f.broker.cancel(&admin(), "p").unwrap().state,
                TaskState::Cancelled
            );
            assert!(
                matches!(rx.try_recv(), Ok(ToEndpoint::Cancel(ids)) if ids == ["p"]),
                "the endpoint is told to stop"
            );
            assert_eq!(
                f.broker
                    .record_outcomes(sid, vec![success(&a[0], 5)])
                    .unwrap(),
                0
            );
        } else {
            assert_eq!(
                f.broker
                    .record_outcomes(sid, vec![success(&a[0], 5)])
                    .unwrap(),
                1
            );
            assert_eq!(
                f.broker.cancel(&admin(), "p").unwrap().state,
                TaskState::Succeeded
            );
        }
        let want = if cancel_first {
            TaskState::Cancelled
        } else {
            TaskState::Succeeded
        };
        assert_eq!(stored(&f, "p").state, want);
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push(e.state);
        }
        assert_eq!(seen, [want], "watchers saw exactly the stored end");
        let d = stored(&f, "d");
        if cancel_first {
            assert_eq!(d.state, TaskState::Cancelled, "dependents follow");
        } else {
            assert_eq!(d.state, TaskState::WaitingForEndpoint, "dependent resolved");
            assert_eq!(d.args, rmp_serde::to_vec(&[5u64]).unwrap());
        }
    }
}

/// The same race run from two threads many times: whatever wins, the store
/// and the watchers end the same.
#[test]
fn cancel_and_outcome_from_two_threads_always_agree() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let f = fixture(rules());
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    for i in 0..200 {
        let id = format!("t{i:03}");
        f.broker.admit(vec![task(&id)]).unwrap();
        let (wid, mut events) = f.broker.open_watch();
        let _ = f.broker.watch(wid, &admin(), &id).unwrap();
        f.broker.add_credits(sid, 1).unwrap();
        let a = assigned(&mut rx).remove(0);
        std::thread::scope(|s| {
            s.spawn(|| f.broker.cancel(&admin(), &id).unwrap());
            s.spawn(|| f.broker.record_outcomes(sid, vec![success(&a, 1)]).unwrap());
        });
        let end = stored(&f, &id).state;
        assert!(end == TaskState::Cancelled || end == TaskState::Succeeded);
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push(e.state);
        }
        assert_eq!(seen, [end], "task {id}");
        while rx.try_recv().is_ok() {}
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_changes_nothing_visible_and_the_broker_fails_closed() {
    let f = fixture(rules());
    f.broker.admit(vec![task("t")]).unwrap();
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(sid, 1).unwrap();
    let a = assigned(&mut rx);
    let (wid, mut events) = f.broker.open_watch();
    let _ = f.broker.watch(wid, &admin(), "t").unwrap();
    f.store.fail_commits.store(true, Ordering::Relaxed);
    let e = f
        .broker
        .record_outcomes(sid, vec![success(&a[0], 1)])
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert!(
        events.try_recv().is_err(),
        "no watcher saw an uncommitted end"
    );
    assert_eq!(stored(&f, "t").state, TaskState::WaitingForEndpoint);
    assert!(!f.broker.is_healthy());
    f.store.fail_commits.store(false, Ordering::Relaxed);
    let e = f.broker.admit(vec![task("u")]).unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    // A restart rebuilds from what was committed; the task runs again.
    let again = Broker::open(f.store.clone(), Arc::new(PlainCatalog), rules()).unwrap();
    assert_eq!(
        again.task("t").unwrap().unwrap().state,
        TaskState::WaitingForEndpoint
    );
}

#[tokio::test(start_paused = true)]
async fn bounds_refuse_a_full_queue_and_drop_a_watcher_that_falls_behind() {
    let f = fixture(Rules {
        max_queued_per_endpoint: 3,
        watch_buffer: 2,
        ..rules()
    });
    f.broker.admit(vec![task("a"), task("b")]).unwrap();
    let e = f.broker.admit(vec![task("c"), task("d")]).unwrap_err();
    assert!(
        matches!(&e, Error::Exhausted(m) if m.contains("limit of 3")),
        "{e:?}"
    );
    assert!(
        f.store.task("c").unwrap().is_none(),
        "nothing of the refused batch stored"
    );
    f.broker.admit(vec![task("c")]).unwrap();

    let (wid, _events) = f.broker.open_watch();
    for id in ["a", "b", "c"] {
        let _ = f.broker.watch(wid, &admin(), id).unwrap();
    }
    for id in ["a", "b", "c"] {
        f.broker.cancel(&admin(), id).unwrap();
    }
    assert!(
        !f.broker.board().watch_txs.contains_key(&wid),
        "a watcher that reads nothing is dropped once its buffer is full"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_requeues_what_was_in_flight_and_counts_what_finished() {
    let f = fixture(rules());
    f.broker.admit(vec![task("a"), task("b")]).unwrap();
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(sid, 2).unwrap();
    let a = assigned(&mut rx);
    f.broker
        .record_outcomes(sid, vec![success(&a[0], 1)])
        .unwrap();
    let again = Broker::open(f.store.clone(), Arc::new(PlainCatalog), rules()).unwrap();
    let counts = again.counts();
    assert_eq!(counts.get(&TaskState::Succeeded), Some(&1));
    assert_eq!(counts.get(&TaskState::WaitingForEndpoint), Some(&1));
    assert_eq!(again.endpoints()[0].queued, 1);
}

/// Several agents serve one name: each lends what its own hello said, and a
/// task that needs a GPU or a camera goes only to a session that has it. A
/// later hello without them does not take them from the name.
#[tokio::test(start_paused = true)]
async fn tasks_that_need_a_gpu_or_camera_go_only_to_sessions_that_have_one() {
    let f = fixture(rules());
    let gpu = Offer {
        resource: Resource::Gpu {
            name: "lavapipe".into(),
            backend: String::new(),
            device_type: String::new(),
            driver: String::new(),
        },
        functions: Scope::all(),
    };
    let camera = Offer {
        resource: Resource::Camera {
            name: "front".into(),
            backend: "test-pattern".into(),
        },
        functions: Scope::all(),
    };
    let (with, mut with_rx) = f
        .broker
        .open_session(Hello {
            offers: vec![gpu.clone(), camera.clone()],
            ..hello()
        })
        .unwrap();
    let (plain, mut plain_rx) = f.broker.open_session(hello()).unwrap();
    let view = f.broker.endpoints();
    assert_eq!(
        view[0].offers,
        [gpu, camera],
        "the plain hello took nothing away"
    );

    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut t = task(&format!("g{i}"));
        t.requires = vec![Requirement::gpu()];
        tasks.push(t);
        let mut t = task(&format!("c{i}"));
        t.requires = vec![Requirement::camera("front")];
        tasks.push(t);
        tasks.push(task(&format!("p{i}")));
    }
    f.broker.admit(tasks).unwrap();
    // The plain session asks first, for everything: it gets only the
    // tasks that need nothing.
    f.broker.add_credits(plain, 12).unwrap();
    let got: Vec<String> = assigned(&mut plain_rx)
        .into_iter()
        .map(|a| a.task_id)
        .collect();
    assert_eq!(got, vec!["p0", "p1", "p2", "p3"]);
    f.broker.add_credits(with, 12).unwrap();
    let mut got: Vec<String> = assigned(&mut with_rx)
        .into_iter()
        .map(|a| a.task_id)
        .collect();
    got.sort();
    assert_eq!(got, vec!["c0", "c1", "c2", "c3", "g0", "g1", "g2", "g3"]);

    // With the GPU session gone, the name keeps no GPU: a GPU task waits
    // for a session that has one instead of going to the plain one.
    f.broker.session_lost(with).unwrap();
    assert!(f.broker.endpoints()[0].offers.is_empty());
    let mut t = task("g-late");
    t.requires = vec![Requirement::gpu()];
    f.broker.admit(vec![t]).unwrap();
    assert!(
        assigned(&mut plain_rx)
            .iter()
            .all(|a| a.task_id != "g-late")
    );
    assert_eq!(
        f.broker.task("g-late").unwrap().unwrap().state,
        TaskState::WaitingForEndpoint
    );
}

#[test]
fn only_its_submitter_or_an_admin_sees_or_cancels_a_task() {
    let f = fixture(rules());
    let mut t = task("mine");
    t.owner = "ada".into();
    f.broker.admit(vec![t]).unwrap();
    let ada = Principal::new("ada", false, "t1");
    let bob = Principal::new("bob", false, "t2");
    let (wid, _rx) = f.broker.open_watch();
    for e in [
        f.broker.task_for(&bob, "mine").unwrap_err(),
        f.broker.watch(wid, &bob, "mine").map(|_| ()).unwrap_err(),
        f.broker.cancel(&bob, "mine").map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::Denied(m) if m.contains("another user")),
            "{e}"
        );
    }
    assert!(f.broker.task_for(&ada, "mine").unwrap().is_some());
    assert!(f.broker.task_for(&admin(), "mine").unwrap().is_some());
    assert_eq!(
        f.broker.cancel(&ada, "mine").unwrap().state,
        TaskState::Cancelled
    );
    // Finished and stored, still hers alone.
    assert!(f.broker.task_for(&bob, "mine").is_err());
    assert!(f.broker.cancel(&bob, "mine").is_err());
    // A record stored before tasks had owners is an admin's.
    f.broker.admit(vec![task("old")]).unwrap();
    assert!(f.broker.task_for(&ada, "old").is_err());
    assert!(f.broker.task_for(&admin(), "old").is_ok());
}

/// Transitions that arrive while a commit is on the disk share the next
/// commit, and none of their tasks goes out, or is answered, before it.
#[test]
fn transitions_behind_a_slow_commit_share_the_next_one_and_wait_for_it() {
    let f = Arc::new(fixture(rules()));
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(sid, 100).unwrap();
    let before = f.store.commits();
    f.store.hold_commits();
    let admit = |id: String| {
        let f = f.clone();
        std::thread::spawn(move || f.broker.admit(vec![task(&id)]))
    };
    let first = admit("a".into());
    // The first leads: it is at the disk.
    f.store.until_waiting(1);
    let rest: Vec<_> = (0..10).map(|i| admit(format!("b{i}"))).collect();
    // Each of the ten has changed the board and waits behind the first.
    while f.broker.unfinished() < 11 {
        std::thread::yield_now();
    }
    assert!(
        assigned(&mut rx).is_empty(),
        "nothing goes out before its commit"
    );
    assert!(!first.is_finished() && rest.iter().all(|t| !t.is_finished()));
    assert_eq!(f.store.task("b0").unwrap(), None);
    f.store.release_commits();
    first.join().unwrap().unwrap();
    for t in rest {
        t.join().unwrap().unwrap();
    }
    assert_eq!(
        f.store.commits() - before,
        2,
        "the ten behind the first share one commit"
    );
    let got: Vec<String> = assigned(&mut rx).into_iter().map(|a| a.task_id).collect();
    assert_eq!(got.len(), 11, "{got:?}");
    assert_eq!(got[0], "a");
    for i in 0..10 {
        assert_eq!(
            stored(&f, &format!("b{i}")).state,
            TaskState::WaitingForEndpoint
        );
    }
    assert_eq!(
        f.broker.metrics().committed.load(Ordering::Relaxed),
        11,
        "eleven transitions committed, in two commits"
    );
}

/// A task whose end is still being committed is not lost to a consumer
/// submitted meanwhile: the consumer sees the producer's result.
#[test]
fn a_consumer_submitted_while_its_producer_commits_sees_the_result() {
    let f = Arc::new(fixture(rules()));
    f.broker.admit(vec![task("p")]).unwrap();
    let (sid, mut rx) = f.broker.open_session(hello()).unwrap();
    f.broker.add_credits(sid, 1).unwrap();
    let p = assigned(&mut rx).pop().unwrap();
    f.store.hold_commits();
    let finish = {
        let f = f.clone();
        std::thread::spawn(move || f.broker.record_outcomes(sid, vec![success(&p, 7)]))
    };
    f.store.until_waiting(1);
    let consume = {
        let f = f.clone();
        std::thread::spawn(move || {
            let mut c = task("c");
            c.state = TaskState::WaitingForDependencies;
            c.history = vec![(TaskState::WaitingForDependencies, 1)];
            c.deps = vec!["p".into()];
            c.pending_args = Some(r#"[{"$task":"p"}]"#.into());
            f.broker.admit(vec![c])
        })
    };
    while f.broker.unfinished() < 1 {
        std::thread::yield_now();
    }
    f.store.release_commits();
    finish.join().unwrap().unwrap();
    consume.join().unwrap().unwrap();
    f.broker.add_credits(sid, 1).unwrap();
    let c = assigned(&mut rx).pop().expect("the consumer runs");
    assert_eq!(c.task_id, "c");
    assert_eq!(
        c.args,
        rmp_serde::to_vec(&[7u64]).unwrap(),
        "fed the producer's result"
    );
}

#[tokio::test(start_paused = true)]
async fn a_drained_block_gets_no_more_work_and_its_load_is_reported_by_block() {
    let f = fixture(rules());
    let ids: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    f.broker
        .admit(ids.iter().map(|id| task(id)).collect())
        .unwrap();
    let block = |b: &str| Hello {
        concurrency: 2,
        block: b.into(),
        ..hello()
    };
    let (a, mut rx_a) = f.broker.open_session(block("pool-1")).unwrap();
    let (b, mut rx_b) = f.broker.open_session(block("pool-2")).unwrap();
    f.broker.add_credits(a, 2).unwrap();
    let held = assigned(&mut rx_a);
    assert_eq!(held.len(), 2);

    let report = ManagerReport {
        provider: "local".into(),
        blocks: vec![BlockReport {
            id: "pool-1".into(),
            job: "41".into(),
            phase: "running".into(),
            workers: 1,
            in_flight: 2,
        }],
        at_ms: 0,
    };
    let load = f.broker.manager_report("pool", report.clone()).unwrap();
    assert_eq!((load.queued, load.running), (4, 2));
    let by_block: Vec<(&str, u32, bool)> = load
        .workers
        .iter()
        .map(|w| (w.block.as_str(), w.in_flight, w.draining))
        .collect();
    assert_eq!(by_block, [("pool-1", 2, false), ("pool-2", 0, false)]);

    // Draining pool-1: told once, its credits gone, and credits it sends
    // later buy it nothing; pool-2 takes the rest.
    assert_eq!(f.broker.drain("pool", "pool-1").unwrap(), 1);
    assert!(matches!(rx_a.try_recv(), Ok(ToEndpoint::Drain)));
    f.broker.add_credits(a, 4).unwrap();
    assert!(
        assigned(&mut rx_a).is_empty(),
        "a draining worker gets no work"
    );
    f.broker.add_credits(b, 4).unwrap();
    assert_eq!(assigned(&mut rx_b).len(), 4);
    // What it held still counts: it finishes it.
    for (i, t) in held.iter().enumerate() {
        let n = f
            .broker
            .record_outcomes(a, vec![success(t, i as u64)])
            .unwrap();
        assert_eq!(n, 1, "a draining worker's outcomes are kept");
    }
    assert_eq!(f.broker.drain("pool", "pool-9").unwrap(), 0);
    assert!(f.broker.drain("pool", "").is_err(), "no block, no drain");

    let view = f.broker.endpoints();
    let pool = view.iter().find(|e| e.name == "pool").unwrap();
    assert_eq!(
        pool.manager.as_ref().map(|m| &m.blocks),
        Some(&report.blocks)
    );
    assert!(
        pool.workers
            .iter()
            .any(|w| w.block == "pool-1" && w.draining)
    );
    f.broker.session_lost(a).unwrap();
    for t in &held {
        assert_eq!(stored(&f, &t.task_id).state, TaskState::Succeeded);
    }
}
