//! The broker core: the one owner of every task transition.
//!
//! Each transition (admit, dispatch, an outcome, a cancel, a lease that
//! expires, a session that is lost) runs under the board lock: it changes
//! the board in memory and leaves every record it changed for the next
//! commit, which it shares with the transitions around it (group commit,
//! see `commit`). Only after that commit are watchers told, endpoints given
//! work and the caller answered, so nobody outside sees a state the store
//! does not hold. A commit that fails leaves memory ahead of the store, so
//! the broker then refuses further transitions (fails closed) until the
//! service restarts from its durable state.
//!
//! Nothing here knows the transport: the gRPC services are adapters that
//! translate to and from these calls.

mod access;
mod board;
mod commit;
mod dataflow;
mod elastic;
mod error;
mod outcomes;
mod sessions;
mod task;
mod tasks;
#[cfg(test)]
mod tests;

use ferry_wit::FailureKind;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

pub use access::Principal;
pub use board::{Assignment, Hello, TaskEvent, ToEndpoint};
pub(crate) use board::{Board, Session};
pub use dataflow::memo_key;
pub use elastic::{BlockReport, LoadView, ManagerReport, WorkerView};
pub use error::{Error, Exceeded, Result};
pub use outcomes::Outcome;
pub use sessions::EndpointView;
pub use task::{Failure, TaskLimits, TaskOutput, TaskRecord, TaskState};

use crate::store::Store;

/// The rules the broker keeps, each with a default that suits one machine.
#[derive(Debug, Clone)]
pub struct Rules {
    /// A session silent for this long is dropped and its tasks come back.
    pub heartbeat_timeout: Duration,
    /// A lease not renewed (by a heartbeat that lists the task) for this
    /// long expires, and the task comes back.
    pub lease_timeout: Duration,
    /// A task lost this many times with the endpoints that held it fails as
    /// `endpoint-lost`, so that a task that kills its endpoint cannot take
    /// down every agent of that name in turn.
    pub max_attempts: u32,
    /// Most tasks queued for one endpoint name; a submission past it is
    /// refused.
    pub max_queued_per_endpoint: usize,
    /// Most unfinished tasks one user may have (the queued-tasks quota).
    pub max_unfinished_per_user: Option<usize>,
    /// Most retries a submission may ask for.
    pub max_retries: u32,
    /// Messages buffered for one endpoint session; a session that does not
    /// read them is dropped.
    pub session_buffer: usize,
    /// Events buffered for one watch stream; a watcher that falls further
    /// behind is dropped (a client watches again).
    pub watch_buffer: usize,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            heartbeat_timeout: Duration::from_secs(10),
            lease_timeout: Duration::from_secs(30),
            max_attempts: 3,
            max_queued_per_endpoint: 1_000_000,
            max_unfinished_per_user: None,
            max_retries: 10,
            session_buffer: 4096,
            watch_buffer: 65_536,
        }
    }
}

/// What the broker needs to know of functions to resolve dataflow: how a
/// producer's result feeds a consumer, and a consumer's arguments in their
/// canonical form.
pub trait Catalog: Send + Sync + 'static {
    /// The JSON value a producer's stored result feeds its consumers (the
    /// `ok` side of a `result`); `Err` says why it feeds nothing.
    fn fed_value(
        &self,
        function_id: &str,
        export: &str,
        result: &[u8],
    ) -> std::result::Result<serde_json::Value, String>;
    /// Checks JSON arguments against the export's signature and encodes them
    /// as canonical MessagePack.
    fn args_from_json(
        &self,
        function_id: &str,
        export: &str,
        values: &[serde_json::Value],
    ) -> std::result::Result<Vec<u8>, String>;
}

/// The broker: the board, the store behind it, and the rules.
pub struct Broker {
    rules: Rules,
    store: Arc<dyn Store>,
    catalog: Arc<dyn Catalog>,
    board: Mutex<Board>,
    pipeline: commit::Pipeline,
    broken: AtomicBool,
    metrics: crate::metrics::Metrics,
}

impl Broker {
    /// Rebuilds the board from the store's unfinished tasks; finished ones
    /// are only counted.
    pub fn open(store: Arc<dyn Store>, catalog: Arc<dyn Catalog>, rules: Rules) -> Result<Broker> {
        let mut board = Board::default();
        board
            .known_endpoints
            .extend(store.endpoints().map_err(Error::internal)?);
        board.finished = store.finished_counts().map_err(Error::internal)?;
        let mut live = store.live_tasks().map_err(Error::internal)?;
        // Oldest first: ids sort by creation time.
        live.sort_by(|a, b| a.id.cmp(&b.id));
        board.tasks.reserve(live.len());
        let now = ferry_proto::now_ms();
        for mut task in live {
            match task.state {
                s if s.is_terminal() => continue,
                TaskState::WaitingForDependencies => {}
                TaskState::WaitingForEndpoint => board.push_queue(&task.id, &task.endpoint, false),
                _ => {
                    // Dispatched when the service stopped: its session is gone.
                    task.set_state(TaskState::WaitingForEndpoint, now);
                    board.push_queue(&task.id, &task.endpoint, false);
                }
            }
            board.hold(task);
        }
        // What the store held is durable: the first transition is number 2.
        board.durable = 1;
        board.applying = 2;
        let broker = Broker {
            rules,
            store,
            catalog,
            pipeline: commit::Pipeline::default(),
            board: Mutex::new(board),
            broken: AtomicBool::new(false),
            metrics: crate::metrics::Metrics::default(),
        };
        broker.transition(|txn| txn.recover_dependencies())?;
        Ok(broker)
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Leases expired and outcomes refused, since start.
    pub fn lease_counters(&self) -> (u64, u64) {
        let b = self.board();
        (b.leases_expired, b.outcomes_refused)
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The board, for reading. Transitions go through [`Broker::transition`].
    pub(crate) fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the broker still takes transitions.
    pub fn is_healthy(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
    }

    /// Runs one transition: `f` changes the board through a [`Txn`], the
    /// records it changed are committed (sharing the commit with the
    /// transitions around it), and only then are watchers told, endpoints
    /// given work and the caller answered.
    pub(crate) fn transition<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        let started = std::time::Instant::now();
        let mut board = self.board();
        if self.broken.load(Ordering::Relaxed) {
            return Err(Error::Unavailable(
                "the service's store failed a commit; it takes no changes until restarted".into(),
            ));
        }
        let mut txn = Txn {
            board: &mut board,
            rules: &self.rules,
            store: &*self.store,
            catalog: &*self.catalog,
            changed: Vec::new(),
            index: HashMap::new(),
            memo: Vec::new(),
            wake: Vec::new(),
            drop_sessions: Vec::new(),
            settling: Vec::new(),
        };
        let out = f(&mut txn);
        let Txn {
            changed,
            memo,
            wake,
            drop_sessions,
            ..
        } = txn;
        if let Err(e) = &out
            && changed.is_empty()
        {
            // Refused before anything changed.
            return Err(e.clone());
        }
        let stuck = if changed.is_empty() && memo.is_empty() {
            // Nothing to store (credits, say): work goes out at once.
            let mut stuck = drop_sessions;
            stuck.extend(self.dispatch(&mut board, wake));
            drop(board);
            stuck
        } else {
            let changed: Vec<Arc<TaskRecord>> = changed.into_iter().map(Arc::new).collect();
            for rec in changed.iter().filter(|r| r.state.is_terminal()) {
                board.finishing.insert(rec.id.clone(), rec.clone());
            }
            let seq = board.applying;
            board.applying += 1;
            self.pipeline.push(commit::Batch {
                seq,
                changed,
                memo,
                wake,
                drop_sessions,
            });
            drop(board);
            self.commit_through(seq)?
        };
        if out.is_err() {
            // A failure after changes (a store read in the middle): the
            // changes so far are committed and consistent; report it.
            tracing::warn!("a transition failed after committing its changes so far");
        }
        self.metrics.transition.observe(started.elapsed());
        for sid in stuck {
            tracing::warn!(
                session = sid,
                "an endpoint session does not read its messages; dropping it"
            );
            self.session_lost(sid)?;
        }
        out
    }

    /// Admits prepared tasks: stored in one commit, then queued (or left to
    /// wait for their producers) and dispatched.
    pub fn admit(&self, records: Vec<TaskRecord>) -> Result<()> {
        self.admit_with(records, true)
    }

    /// [`Broker::admit`] for an admin's tasks, which no user quota holds.
    pub fn admit_unmetered(&self, records: Vec<TaskRecord>) -> Result<()> {
        self.admit_with(records, false)
    }

    fn admit_with(&self, records: Vec<TaskRecord>, metered: bool) -> Result<()> {
        self.transition(|txn| {
            let mut per_endpoint: HashMap<&str, usize> = HashMap::new();
            for r in &records {
                if !r.state.is_terminal() && r.deps.is_empty() {
                    *per_endpoint.entry(&r.endpoint).or_default() += 1;
                }
            }
            if let Some(max) = txn.rules.max_unfinished_per_user.filter(|_| metered) {
                let mut per_owner: HashMap<&str, usize> = HashMap::new();
                for r in records.iter().filter(|r| !r.state.is_terminal()) {
                    *per_owner.entry(&r.owner).or_default() += 1;
                }
                for (owner, n) in per_owner {
                    let held = txn.board.held_by(owner);
                    if held + n > max {
                        return Err(Error::Quota(Exceeded {
                            quota: "queued-tasks",
                            message: format!(
                                "quota queued-tasks ({max}) reached for user `{owner}`: {held} tasks unfinished, and {n} more would pass it"
                            ),
                            retry_after: std::time::Duration::from_secs(1),
                        }));
                    }
                }
            }
            for (endpoint, n) in per_endpoint {
                let queued = txn.board.queued(endpoint);
                let max = txn.rules.max_queued_per_endpoint;
                if queued + n > max {
                    return Err(Error::exhausted(format!(
                        "endpoint {endpoint} has {queued} tasks queued; {n} more would pass the service's limit of {max}"
                    )));
                }
            }
            let mut waiting = Vec::new();
            for r in records {
                if r.state.is_terminal() {
                    // Answered from the memo at submit.
                    txn.finish(r);
                    continue;
                }
                tracing::debug!(task = %r.id, endpoint = %r.endpoint, "admitted");
                if !r.deps.is_empty() {
                    waiting.push(r.id.clone());
                    txn.wait(r);
                } else {
                    txn.enqueue(r, false);
                }
            }
            for id in waiting {
                txn.check_dependencies(&id)?;
            }
            Ok(())
        })
    }

    /// Cancels a task that has not finished (and, down the graph, the tasks
    /// waiting for it); a finished task is returned as it is.
    pub fn cancel(&self, who: &Principal, id: &str) -> Result<TaskRecord> {
        self.transition(|txn| {
            let Some(mut rec) = txn.board.tasks.get(id).cloned() else {
                let rec = txn
                    .record(id)?
                    .ok_or_else(|| Error::not_found(format!("unknown task `{id}`")))?;
                who.check(&rec)?;
                return Ok(rec);
            };
            who.check(&rec)?;
            rec.set_state(TaskState::Cancelled, ferry_proto::now_ms());
            rec.error = Some(Failure::new(
                FailureKind::Cancelled,
                "the task was cancelled",
            ));
            if let Some(lease) = txn.board.leases.get(id).copied()
                && let Some(s) = txn.board.sessions.get(&lease.session)
                && s.outbox
                    .try_send(ToEndpoint::Cancel(vec![id.to_owned()]))
                    .is_err()
            {
                txn.drop_sessions.push(lease.session);
            }
            tracing::info!(task = %id, "cancelled");
            txn.finish(rec.clone());
            txn.settle()?;
            Ok(rec)
        })
    }

    /// A task by id: from the board while unfinished, else from the store.
    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        if let Some(t) = self.board().tasks.get(id) {
            return Ok(Some(t.clone()));
        }
        self.store.task(id).map_err(Error::internal)
    }

    /// A task by id, for `who`: refused when another user submitted it.
    pub fn task_for(&self, who: &Principal, id: &str) -> Result<Option<TaskRecord>> {
        let t = self.task(id)?;
        if let Some(t) = &t {
            who.check(t)?;
        }
        Ok(t)
    }

    /// Opens a watch stream; events arrive for tasks added with
    /// [`Broker::watch`].
    pub fn open_watch(&self) -> (u64, mpsc::Receiver<TaskEvent>) {
        let (tx, rx) = mpsc::channel(self.rules.watch_buffer.max(1));
        let mut b = self.board();
        let wid = b.fresh_id();
        b.watch_txs.insert(wid, tx);
        (wid, rx)
    }

    /// Follows `id` on watch `wid`. A task that has finished already is
    /// returned (watchers hear nothing more of it); `None` when unknown.
    pub fn watch(&self, wid: u64, who: &Principal, id: &str) -> Result<Watched> {
        {
            let mut b = self.board();
            // A task whose end is still being committed is followed too:
            // its watchers hear of it once the commit is done.
            if let Some(t) = b
                .tasks
                .get(id)
                .or_else(|| b.finishing.get(id).map(|t| &**t))
            {
                who.check(t)?;
                b.watchers.entry(id.to_owned()).or_default().push(wid);
                return Ok(Watched::Following);
            }
        }
        // Finished (stored before it left the board), or unknown.
        Ok(match self.store.task(id).map_err(Error::internal)? {
            Some(t) => {
                who.check(&t)?;
                Watched::Finished(Arc::new(t))
            }
            None => Watched::Unknown,
        })
    }

    pub fn close_watch(&self, wid: u64) {
        self.board().watch_txs.remove(&wid);
    }

    /// Counts of tasks by state.
    pub fn counts(&self) -> HashMap<TaskState, u64> {
        self.board().counts()
    }

    /// `owner`'s unfinished tasks, by state.
    pub fn unfinished_by(&self, owner: &str) -> HashMap<TaskState, u64> {
        let mut counts = HashMap::new();
        for t in self.board().tasks.values().filter(|t| t.owner == owner) {
            *counts.entry(t.state).or_default() += 1;
        }
        counts
    }

    /// Number of unfinished tasks (queued, waiting or in flight).
    pub fn unfinished(&self) -> usize {
        self.board().tasks.len()
    }

    /// Records the endpoint names the service has heard of.
    pub fn known_endpoints(&self) -> HashSet<String> {
        self.board().known_endpoints.clone()
    }
}

/// What [`Broker::watch`] found.
pub enum Watched {
    Following,
    Finished(TaskEvent),
    Unknown,
}

/// One transition in progress: the board, and what it changed.
pub(crate) struct Txn<'a> {
    pub(crate) board: &'a mut Board,
    pub(crate) rules: &'a Rules,
    pub(crate) store: &'a dyn Store,
    pub(crate) catalog: &'a dyn Catalog,
    /// Records to commit (the latest version of each), in order of change.
    changed: Vec<TaskRecord>,
    index: HashMap<String, usize>,
    memo: Vec<(String, Vec<u8>)>,
    /// Endpoints with new work, dispatched after the commit.
    wake: Vec<String>,
    /// Sessions found unable to take messages, dropped after the commit.
    pub(crate) drop_sessions: Vec<u64>,
    /// Finished tasks whose dependents are still to be settled.
    settling: Vec<TaskRecord>,
}

impl Txn<'_> {
    /// Notes a changed record for the commit.
    pub(crate) fn changed(&mut self, rec: TaskRecord) {
        match self.index.get(&rec.id) {
            Some(&i) => self.changed[i] = rec,
            None => {
                self.index.insert(rec.id.clone(), self.changed.len());
                self.changed.push(rec);
            }
        }
    }

    /// A task's record as this transition sees it: changed here, on the
    /// board, or in the store.
    pub(crate) fn record(&self, id: &str) -> Result<Option<TaskRecord>> {
        if let Some(&i) = self.index.get(id) {
            return Ok(Some(self.changed[i].clone()));
        }
        if let Some(t) = self.board.tasks.get(id) {
            return Ok(Some(t.clone()));
        }
        if let Some(t) = self.board.finishing.get(id) {
            return Ok(Some((**t).clone()));
        }
        self.store.task(id).map_err(Error::internal)
    }

    pub(crate) fn memo_pending(&self, key: &str) -> Option<&(String, Vec<u8>)> {
        self.memo.iter().find(|(k, _)| k == key)
    }

    /// Dispatches `endpoint`'s queue after the commit.
    pub(crate) fn wake(&mut self, endpoint: String) {
        if !self.wake.contains(&endpoint) {
            self.wake.push(endpoint);
        }
    }

    pub(crate) fn memoize(&mut self, key: String, result: Vec<u8>) {
        self.memo.push((key, result));
    }

    /// Queues a task for its endpoint.
    pub(crate) fn enqueue(&mut self, rec: TaskRecord, front: bool) {
        self.board.hold(rec.clone());
        self.board.push_queue(&rec.id, &rec.endpoint, front);
        self.wake(rec.endpoint.clone());
        self.changed(rec);
    }

    /// Ends a task: out of the board, counted, its lease gone; its
    /// dependents are settled by [`Txn::settle`].
    pub(crate) fn finish(&mut self, rec: TaskRecord) {
        debug_assert!(rec.state.is_terminal());
        self.board.unhold(&rec.id);
        self.board.missing.remove(&rec.id);
        self.board.release(&rec.id);
        *self.board.finished.entry(rec.state).or_default() += 1;
        if self.board.dependents.contains_key(&rec.id) {
            self.settling.push(rec.clone());
        }
        self.changed(rec);
    }

    /// A task lost with the endpoint that held it: back to the queue, or
    /// failed as `endpoint-lost` once it has been lost `max_attempts` times.
    pub(crate) fn lost(&mut self, id: &str, why: &str) {
        let Some(mut rec) = self.board.tasks.get(id).cloned() else {
            return;
        };
        self.board.release(id);
        rec.lost += 1;
        let now = ferry_proto::now_ms();
        if rec.lost >= self.rules.max_attempts {
            rec.set_state(TaskState::Failed, now);
            rec.error = Some(Failure::new(
                FailureKind::EndpointLost,
                format!(
                    "the task was lost {} times with endpoint {} (last: {why}); it is not run again",
                    rec.lost, rec.endpoint
                ),
            ));
            tracing::warn!(task = %id, endpoint = %rec.endpoint, lost = rec.lost, "failed: endpoint lost");
            self.finish(rec);
        } else {
            tracing::info!(task = %id, endpoint = %rec.endpoint, lost = rec.lost, "lost ({why}); queued again");
            rec.set_state(TaskState::WaitingForEndpoint, now);
            self.enqueue(rec, true);
        }
    }
}

impl Broker {
    /// Ids of finished tasks whose results unfinished tasks still take: kept
    /// past the retention period.
    pub fn needed_results(&self) -> HashSet<String> {
        let b = self.board();
        b.tasks
            .values()
            .flat_map(|t| t.deps.iter())
            .filter(|d| !b.tasks.contains_key(d))
            .cloned()
            .collect()
    }
}
