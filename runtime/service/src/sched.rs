//! In-memory scheduling state: queues per endpoint name, connected sessions
//! with their credits, in-flight tasks and watchers. Durable truth lives in
//! the [`Store`](crate::Store); this is rebuilt from it at start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use ferry_proto::v1::{
    Assignment, AssignmentBatch, GpuInfo, Limits, ServiceMessage, StateTime, TaskError, TaskEvent,
    TaskInfo, TaskState, service_message,
};
use tokio::sync::mpsc;

use crate::store::TaskRecord;

pub(crate) use ferry_proto::now_ms;

pub(crate) type Outbox = mpsc::UnboundedSender<Result<ServiceMessage, tonic::Status>>;
pub(crate) type WatchTx = mpsc::UnboundedSender<Result<TaskEvent, tonic::Status>>;

pub(crate) struct Session {
    pub(crate) endpoint: String,
    pub(crate) outbox: Outbox,
    pub(crate) credits: u32,
    pub(crate) capacity: u32,
    pub(crate) in_flight: HashSet<String>,
    pub(crate) last_seen: Instant,
    pub(crate) last_seen_ms: i64,
}

#[derive(Default)]
pub(crate) struct Sched {
    /// Unfinished tasks, by id.
    pub(crate) tasks: HashMap<String, TaskRecord>,
    pub(crate) queues: HashMap<String, VecDeque<String>>,
    pub(crate) sessions: HashMap<u64, Session>,
    pub(crate) known_endpoints: HashSet<String>,
    /// The GPU each endpoint name lends, as its latest session said (`None`:
    /// it has none).
    pub(crate) gpus: HashMap<String, Option<GpuInfo>>,
    /// The cameras each endpoint name has, and their grants.
    pub(crate) cameras: HashMap<String, Vec<ferry_proto::v1::CameraInfo>>,
    pub(crate) last_heartbeat: HashMap<String, i64>,
    pub(crate) watchers: HashMap<String, Vec<u64>>,
    pub(crate) watch_txs: HashMap<u64, WatchTx>,
    /// Tasks that have finished, by final state (unfinished ones are counted
    /// from `tasks`).
    pub(crate) finished: HashMap<i32, u64>,
    pub(crate) next_id: u64,
    /// Producer id → the waiting tasks that take its result.
    pub(crate) dependents: HashMap<String, Vec<String>>,
    /// Waiting task id → producers not finished yet.
    pub(crate) missing: HashMap<String, usize>,
    /// Outcomes reported by each endpoint name's sessions.
    pub(crate) tasks_run: HashMap<String, u64>,
}

pub(crate) fn info(t: &TaskRecord) -> TaskInfo {
    TaskInfo {
        id: t.id.clone(),
        endpoint: t.endpoint.clone(),
        function_id: t.function_id.clone(),
        export: t.export.clone(),
        state: t.state,
        history: t
            .history
            .iter()
            .map(|&(state, at_ms)| StateTime { state, at_ms })
            .collect(),
        result: t.result.clone().unwrap_or_default(),
        error: t
            .error
            .clone()
            .map(|(kind, message)| TaskError { kind, message }),
        depends_on: t.deps.clone(),
        cache_hit: t.cache_hit,
        attempts: t.attempts,
    }
}

pub(crate) fn set_state(t: &mut TaskRecord, state: TaskState, at_ms: i64) {
    t.state = state as i32;
    t.history.push((state as i32, at_ms));
}

impl Sched {
    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Tells every watcher of `task` about its current state; forgets the
    /// watchers once the task is final.
    pub(crate) fn notify(&mut self, task: &TaskRecord) {
        let terminal = TaskState::try_from(task.state).is_ok_and(TaskState::is_terminal);
        let ids = if terminal {
            self.watchers.remove(&task.id).unwrap_or_default()
        } else {
            self.watchers.get(&task.id).cloned().unwrap_or_default()
        };
        if ids.is_empty() {
            return;
        }
        let event = TaskEvent {
            task: Some(info(task)),
        };
        for w in ids {
            if let Some(tx) = self.watch_txs.get(&w)
                && tx.send(Ok(event.clone())).is_err()
            {
                self.watch_txs.remove(&w);
            }
        }
    }

    /// Pushes queued tasks of `endpoint` to its sessions, as far as credits go.
    pub(crate) fn dispatch(&mut self, endpoint: &str) {
        let Some(queue) = self.queues.get_mut(endpoint) else {
            return;
        };
        if queue.is_empty() {
            return;
        }
        let now = now_ms();
        let mut batches: HashMap<u64, Vec<Assignment>> = HashMap::new();
        let mut sessions: Vec<(&u64, &mut Session)> = self
            .sessions
            .iter_mut()
            .filter(|(_, s)| s.endpoint == endpoint && s.credits > 0)
            .collect();
        'outer: while !sessions.is_empty() {
            for (sid, s) in sessions.iter_mut() {
                let Some(task_id) = queue.pop_front() else {
                    break 'outer;
                };
                let Some(task) = self.tasks.get_mut(&task_id) else {
                    continue; // cancelled while queued
                };
                set_state(task, TaskState::Dispatched, now);
                s.credits -= 1;
                s.in_flight.insert(task_id.clone());
                let [timeout_ms, memory_bytes, output_bytes] = task.limits;
                batches.entry(**sid).or_default().push(Assignment {
                    task_id,
                    function_id: task.function_id.clone(),
                    export: task.export.clone(),
                    args: task.args.clone(),
                    limits: Some(Limits {
                        timeout_ms,
                        memory_bytes,
                        output_bytes,
                    }),
                    requires: task.requires.clone(),
                });
            }
            sessions.retain(|(_, s)| s.credits > 0);
        }
        for (sid, tasks) in batches {
            if let Some(s) = self.sessions.get(&sid) {
                let msg = ServiceMessage {
                    kind: Some(service_message::Kind::Tasks(AssignmentBatch { tasks })),
                };
                let _ = s.outbox.send(Ok(msg));
            }
        }
    }

    /// Puts a session's unfinished tasks back at the front of their queue.
    pub(crate) fn drop_session(&mut self, sid: u64) -> Option<String> {
        let session = self.sessions.remove(&sid)?;
        let now = now_ms();
        let queue = self.queues.entry(session.endpoint.clone()).or_default();
        for id in session.in_flight {
            if let Some(task) = self.tasks.get_mut(&id) {
                set_state(task, TaskState::WaitingForEndpoint, now);
                queue.push_front(id);
            }
        }
        Some(session.endpoint)
    }
}
