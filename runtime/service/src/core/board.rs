//! The broker's memory: queues per endpoint name, connected sessions with
//! their credits and leases, watchers. Durable truth lives in the
//! [`Store`](crate::Store); this is rebuilt from it at start, and only the
//! broker's transitions change it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ferry_policy::{Grants, Offer, Requirement};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::task::{TaskLimits, TaskRecord, TaskState};

/// A task handed to an endpoint session.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub task_id: String,
    pub function_id: String,
    pub export: String,
    pub args: Vec<u8>,
    pub limits: TaskLimits,
    pub requires: Vec<Requirement>,
    /// The lease this run is under (1 for the first).
    pub lease: u32,
    /// Who submitted it: the endpoint checks its policy again, and logs
    /// for whom it ran.
    pub submitter: String,
}

/// What the broker tells one endpoint session.
#[derive(Debug, Clone, PartialEq)]
pub enum ToEndpoint {
    Tasks(Vec<Assignment>),
    /// Stop these: cancelled, or no longer leased to this session.
    Cancel(Vec<String>),
    /// Take no more tasks, finish those held, then close and exit.
    Drain,
}

/// A task's record as watchers see it after a committed change.
pub type TaskEvent = Arc<TaskRecord>;

/// What an endpoint says of itself when its session opens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hello {
    pub name: String,
    pub concurrency: u32,
    pub version: String,
    /// What it lends tasks (GPU, cameras, mounts, variables), each to the
    /// functions named.
    pub offers: Vec<Offer>,
    /// The elastic endpoint's block it belongs to; empty for an agent
    /// started by hand.
    pub block: String,
}

/// A task leased to one session: only that session's outcome counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) session: u64,
    pub(crate) number: u32,
    /// Past this, with no renewal, the task is taken back.
    pub(crate) deadline: Instant,
}

pub(crate) struct Session {
    pub(crate) endpoint: String,
    pub(crate) outbox: mpsc::Sender<ToEndpoint>,
    pub(crate) credits: u32,
    pub(crate) capacity: u32,
    pub(crate) in_flight: HashSet<String>,
    /// A task lost before, run here alone: nothing else is leased to this
    /// session until it ends, so that if it takes the endpoint down again it
    /// takes nothing else with it.
    pub(crate) suspect: Option<String>,
    pub(crate) last_seen: Instant,
    pub(crate) last_seen_ms: i64,
    /// What this session lends: a task that needs a GPU, a camera, a mount
    /// or a variable goes only to a session that grants it, whatever other
    /// agents of its name have.
    pub(crate) grants: Grants,
    pub(crate) block: String,
    /// Told to drain: it gets no credits and no tasks.
    pub(crate) draining: bool,
}

impl Session {
    /// Whether this session can run a task with these requirements for
    /// `function_id`.
    pub(crate) fn serves(&self, requires: &[Requirement], function_id: &str) -> bool {
        self.grants.serves(requires, function_id)
    }
}

/// What the service last heard of an endpoint name.
#[derive(Default, Clone)]
pub(crate) struct EndpointFacts {
    /// The grants of its live sessions, as of the last session opened or
    /// lost (`None`: no session ever said).
    pub(crate) grants: Option<Vec<Grants>>,
    pub(crate) last_heartbeat_ms: i64,
    /// Outcomes its sessions reported (and the broker accepted) since start.
    pub(crate) tasks_run: u64,
    /// What its manager last reported, if it is elastic.
    pub(crate) manager: Option<super::ManagerReport>,
}

/// How far into a queue dispatch looks for a task a session can serve.
const SCAN: usize = 4096;

/// A task waiting in a queue, with the transition that queued it: no task
/// goes out before that transition is committed.
pub(crate) struct Queued {
    id: String,
    seq: u64,
}

#[derive(Default)]
pub(crate) struct Board {
    /// Unfinished tasks, by id.
    pub(crate) tasks: super::tasks::Tasks,
    /// Tasks that finished in a transition whose commit is under way: off
    /// the board, not yet in the store.
    pub(crate) finishing: HashMap<String, Arc<TaskRecord>>,
    /// The number the transition being applied gets if it changes anything.
    pub(crate) applying: u64,
    /// Transitions up to this number are committed.
    pub(crate) durable: u64,
    pub(crate) queues: HashMap<String, VecDeque<Queued>>,
    /// Per endpoint name, tasks lost before, each to run alone on a session
    /// with nothing else in flight.
    pub(crate) suspects: HashMap<String, VecDeque<Queued>>,
    /// Tasks queued per endpoint name (the queues may hold stale ids of
    /// tasks cancelled while queued; this does not).
    pub(crate) queued: HashMap<String, usize>,
    pub(crate) sessions: HashMap<u64, Session>,
    pub(crate) leases: HashMap<String, Lease>,
    pub(crate) known_endpoints: HashSet<String>,
    pub(crate) facts: HashMap<String, EndpointFacts>,
    pub(crate) watchers: HashMap<String, Vec<u64>>,
    pub(crate) watch_txs: HashMap<u64, mpsc::Sender<TaskEvent>>,
    /// Tasks that have finished, by final state (unfinished ones are counted
    /// from `tasks`).
    pub(crate) finished: HashMap<TaskState, u64>,
    pub(crate) next_id: u64,
    /// Producer id → the waiting tasks that take its result.
    pub(crate) dependents: HashMap<String, Vec<String>>,
    /// Waiting task id → producers not finished yet.
    pub(crate) missing: HashMap<String, usize>,
    /// Leases that expired, since start.
    pub(crate) leases_expired: u64,
    /// Outcomes dropped because their session did not hold the lease.
    pub(crate) outcomes_refused: u64,
    /// Unfinished tasks per submitter, for the queued-tasks quota.
    pub(crate) per_owner: HashMap<String, usize>,
}

impl Board {
    /// Puts an unfinished task on the board (or updates it there).
    pub(crate) fn hold(&mut self, rec: TaskRecord) {
        let owner = rec.owner.clone();
        if self.tasks.insert(rec).is_none() {
            *self.per_owner.entry(owner).or_default() += 1;
        }
    }

    /// Takes a task off the board.
    pub(crate) fn unhold(&mut self, id: &str) {
        if let Some(rec) = self.tasks.remove(id)
            && let Some(n) = self.per_owner.get_mut(&rec.owner)
        {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&rec.owner);
            }
        }
    }

    /// Unfinished tasks `owner` submitted.
    pub(crate) fn held_by(&self, owner: &str) -> usize {
        self.per_owner.get(owner).copied().unwrap_or(0)
    }

    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Ends a task's lease, if it has one, on the session that holds it.
    pub(crate) fn release(&mut self, task_id: &str) -> Option<Lease> {
        let lease = self.leases.remove(task_id)?;
        if let Some(s) = self.sessions.get_mut(&lease.session) {
            s.in_flight.remove(task_id);
            if s.suspect.as_deref() == Some(task_id) {
                s.suspect = None;
            }
        }
        Some(lease)
    }

    pub(crate) fn push_queue(&mut self, task_id: &str, endpoint: &str, front: bool) {
        let suspect = self.tasks.get(task_id).is_some_and(|t| t.lost > 0);
        let queues = if suspect {
            &mut self.suspects
        } else {
            &mut self.queues
        };
        let q = queues.entry(endpoint.to_owned()).or_default();
        let entry = Queued {
            id: task_id.to_owned(),
            seq: self.applying,
        };
        if front {
            q.push_front(entry);
        } else {
            q.push_back(entry);
        }
        *self.queued.entry(endpoint.to_owned()).or_default() += 1;
    }

    /// Sets what an endpoint name lends from its live sessions' grants.
    /// With none live, the last known stay, so that a submission to an
    /// endpoint that is offline for now is still checked.
    pub(crate) fn gather_facts(&mut self, endpoint: &str) {
        let mut live: Vec<(&u64, &Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.endpoint == endpoint)
            .collect();
        if live.is_empty() {
            return;
        }
        live.sort_by_key(|(sid, _)| **sid);
        let grants = live.iter().map(|(_, s)| s.grants.clone()).collect();
        self.facts.entry(endpoint.to_owned()).or_default().grants = Some(grants);
    }

    pub(crate) fn queued(&self, endpoint: &str) -> usize {
        self.queued.get(endpoint).copied().unwrap_or(0)
    }

    /// A finished task's end is committed: it is the store's now.
    pub(crate) fn committed_finish(&mut self, task: &Arc<TaskRecord>) {
        if self
            .finishing
            .get(&task.id)
            .is_some_and(|t| Arc::ptr_eq(t, task))
        {
            self.finishing.remove(&task.id);
        }
    }

    /// Tells every watcher of `task` about its committed state; forgets the
    /// watchers once the task is final. A watcher whose buffer is full is
    /// dropped (its stream ends, and a client watches again).
    pub(crate) fn notify(&mut self, task: &TaskEvent) {
        let ids = if task.state.is_terminal() {
            self.watchers.remove(&task.id).unwrap_or_default()
        } else {
            self.watchers.get(&task.id).cloned().unwrap_or_default()
        };
        for w in ids {
            if let Some(tx) = self.watch_txs.get(&w)
                && tx.try_send(task.clone()).is_err()
            {
                tracing::warn!(watcher = w, "a watcher fell behind or left; dropping it");
                self.watch_txs.remove(&w);
            }
        }
    }

    /// Pushes queued tasks of `endpoint` to its sessions, as far as credits
    /// go, each under a fresh lease. A suspect (a task lost before) goes
    /// first, alone, to a session with nothing in flight; while one waits,
    /// the endpoint's first session takes no new work until it drains.
    /// Returns the sessions whose outbox was full or gone, for the caller to
    /// drop.
    pub(crate) fn dispatch(
        &mut self,
        endpoint: &str,
        lease_for: std::time::Duration,
        now: Instant,
        waited: &crate::metrics::Histogram,
    ) -> Vec<u64> {
        let now_ms = ferry_proto::now_ms();
        let mut order: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.endpoint == endpoint)
            .map(|(id, _)| *id)
            .collect();
        order.sort_unstable();
        let drain = order.first().copied();
        let mut batches: HashMap<u64, Vec<Assignment>> = HashMap::new();
        let mut progress = true;
        while progress {
            progress = false;
            for &sid in &order {
                let Some(s) = self.sessions.get(&sid) else {
                    continue;
                };
                if s.credits == 0 || s.suspect.is_some() {
                    continue;
                }
                let suspects_wait = self.suspects.get(endpoint).is_some_and(|q| !q.is_empty());
                let (from_suspects, idle) = (suspects_wait, s.in_flight.is_empty());
                if from_suspects && !idle && Some(sid) == drain {
                    continue;
                }
                let queue = if from_suspects && idle {
                    self.suspects.get_mut(endpoint)
                } else {
                    self.queues.get_mut(endpoint)
                };
                let Some(queue) = queue else {
                    continue;
                };
                // The first waiting task this session can serve; one whose
                // task ended (cancelled) while queued is stale and dropped,
                // and one that needs what this session lacks, or whose
                // queuing is not committed yet, stays.
                let mut i = 0;
                let task_id = loop {
                    if i >= queue.len().min(SCAN) {
                        break None;
                    }
                    if queue[i].seq > self.durable {
                        i += 1;
                        continue;
                    }
                    match self.tasks.get(&queue[i].id) {
                        Some(t) if t.state == TaskState::WaitingForEndpoint => {
                            if s.serves(&t.requires, &t.function_id) {
                                break queue.remove(i).map(|q| q.id);
                            }
                            i += 1;
                        }
                        _ => {
                            queue.remove(i);
                        }
                    }
                };
                let Some(task_id) = task_id else {
                    continue;
                };
                let queued = self.queued.entry(endpoint.to_owned()).or_default();
                *queued = queued.saturating_sub(1);
                let (Some(task), Some(s)) =
                    (self.tasks.get_mut(&task_id), self.sessions.get_mut(&sid))
                else {
                    continue;
                };
                let since = task.history.last().map_or(now_ms, |h| h.1);
                waited.observe(std::time::Duration::from_millis(
                    now_ms.saturating_sub(since).max(0) as u64,
                ));
                task.set_state(TaskState::Dispatched, now_ms);
                task.leases += 1;
                s.credits -= 1;
                s.in_flight.insert(task_id.clone());
                if task.lost > 0 {
                    s.suspect = Some(task_id.clone());
                }
                self.leases.insert(
                    task_id.clone(),
                    Lease {
                        session: sid,
                        number: task.leases,
                        deadline: now + lease_for,
                    },
                );
                tracing::debug!(task = %task_id, session = sid, lease = task.leases, "dispatched");
                batches.entry(sid).or_default().push(Assignment {
                    task_id,
                    function_id: task.function_id.clone(),
                    export: task.export.clone(),
                    args: task.args.clone(),
                    limits: task.limits,
                    requires: task.requires.clone(),
                    lease: task.leases,
                    submitter: task.owner.clone(),
                });
                progress = true;
            }
        }
        let mut stuck = Vec::new();
        for (sid, tasks) in batches {
            if let Some(s) = self.sessions.get(&sid)
                && s.outbox.try_send(ToEndpoint::Tasks(tasks)).is_err()
            {
                stuck.push(sid);
            }
        }
        stuck
    }

    /// Counts of tasks by state, finished and not.
    pub(crate) fn counts(&self) -> HashMap<TaskState, u64> {
        let mut counts = self.finished.clone();
        for t in self.tasks.values() {
            *counts.entry(t.state).or_default() += 1;
        }
        counts
    }
}
