//! A task as the broker knows it: typed states, limits and failures.

use ferry_policy::Requirement;
use serde::{Deserialize, Serialize};

/// Where a task is in its life. Stored as the wire protocol's numbers, so
/// records written before this type existed read back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    WaitingForEndpoint,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    WaitingForDependencies,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::WaitingForEndpoint,
        TaskState::Dispatched,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::WaitingForDependencies,
    ];

    /// Whether no further change can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }

    /// The number the wire protocol and the store use.
    pub fn code(self) -> i32 {
        match self {
            TaskState::WaitingForEndpoint => 1,
            TaskState::Dispatched => 2,
            TaskState::Running => 3,
            TaskState::Succeeded => 4,
            TaskState::Failed => 5,
            TaskState::Cancelled => 6,
            TaskState::WaitingForDependencies => 7,
        }
    }

    pub fn from_code(code: i32) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The name logs and metrics use.
    pub fn label(self) -> &'static str {
        match self {
            TaskState::WaitingForEndpoint => "waiting-for-endpoint",
            TaskState::Dispatched => "dispatched",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::WaitingForDependencies => "waiting-for-dependencies",
        }
    }
}

impl Serialize for TaskState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}

impl<'de> Deserialize<'de> for TaskState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = i32::deserialize(d)?;
        TaskState::from_code(code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown task state {code}")))
    }
}

/// Per-task limits a submission asks for; zero means the endpoint's default.
/// Stored as a three-element array, as records always were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLimits {
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub output_bytes: u64,
}

/// Why a task failed or was cancelled: a stable kind and a message for
/// people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// What a task printed and logged, bounded by its endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// One structured line each: `level target: message`.
    pub logs: Vec<String>,
    /// Bytes dropped past the endpoint's bound.
    pub truncated: u64,
}

impl TaskOutput {
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty() && self.logs.is_empty()
    }
}

/// A task as stored: everything needed to run it again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub endpoint: String,
    pub function_id: String,
    pub export: String,
    /// MessagePack array of arguments, already checked against the signature.
    /// Stored as bytes (older stores, as a list of numbers, read the same).
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    pub limits: TaskLimits,
    pub state: TaskState,
    /// (state, unix ms) for every state the task has been in.
    pub history: Vec<(TaskState, i64)>,
    #[serde(with = "serde_bytes")]
    pub result: Option<Vec<u8>>,
    pub error: Option<Failure>,
    /// What the task needs from its endpoint (kept in its string form,
    /// `gpu`, `camera:front`, as records always have).
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// Tasks whose results are among the arguments.
    #[serde(default)]
    pub deps: Vec<String>,
    /// The arguments as JSON with `{"$task": id}` references, until the last
    /// producer succeeds and they become `args`.
    #[serde(default)]
    pub pending_args: Option<String>,
    /// blake3 of function, export and arguments, when the result is memoized.
    #[serde(default)]
    pub memo_key: Option<String>,
    /// The result came from the memo.
    #[serde(default)]
    pub cache_hit: bool,
    /// Runs allowed after the first, for failures of the kinds in `retry_on`.
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub retry_on: Vec<String>,
    /// Runs after the first so far, for retried failures.
    #[serde(default)]
    pub attempts: u32,
    /// Times the task was lost with the endpoint that held it (a session
    /// that dropped or went silent, or a lease that expired).
    #[serde(default)]
    pub lost: u32,
    /// Leases granted so far: the number of the current or last one.
    #[serde(default)]
    pub leases: u32,
    /// What the last run printed and logged.
    #[serde(default)]
    pub output: TaskOutput,
    /// The user who submitted it: only they (or an admin) see it. (Records
    /// are stored as arrays: a new field goes last.)
    #[serde(default)]
    pub owner: String,
}

impl TaskRecord {
    /// A task waiting for an endpoint, as a submission makes it.
    pub fn new(
        id: String,
        endpoint: String,
        function_id: String,
        export: String,
        at_ms: i64,
    ) -> TaskRecord {
        TaskRecord {
            id,
            endpoint,
            function_id,
            export,
            args: Vec::new(),
            limits: TaskLimits::default(),
            state: TaskState::WaitingForEndpoint,
            history: vec![(TaskState::WaitingForEndpoint, at_ms)],
            result: None,
            error: None,
            requires: Vec::new(),
            deps: Vec::new(),
            pending_args: None,
            memo_key: None,
            cache_hit: false,
            retries: 0,
            retry_on: Vec::new(),
            attempts: 0,
            lost: 0,
            leases: 0,
            output: TaskOutput::default(),
            owner: String::new(),
        }
    }

    pub fn set_state(&mut self, state: TaskState, at_ms: i64) {
        self.state = state;
        self.history.push((state, at_ms));
    }

    /// When it reached its final state.
    pub fn finished_at_ms(&self) -> Option<i64> {
        self.state
            .is_terminal()
            .then(|| self.history.last().map_or(0, |h| h.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as it was stored before states, limits and failures were
    /// typed: the same MessagePack must read back.
    #[derive(Serialize)]
    struct Before {
        id: String,
        endpoint: String,
        function_id: String,
        export: String,
        args: Vec<u8>,
        limits: [u64; 3],
        state: i32,
        history: Vec<(i32, i64)>,
        result: Option<Vec<u8>>,
        error: Option<(String, String)>,
    }

    #[test]
    fn records_stored_before_typing_read_back() {
        let old = Before {
            id: "t".into(),
            endpoint: "local".into(),
            function_id: "f".into(),
            export: "pi".into(),
            args: vec![0x90],
            limits: [5, 6, 7],
            state: 5,
            history: vec![(1, 10), (5, 11)],
            result: None,
            error: Some(("trap".into(), "boom".into())),
        };
        let bytes = rmp_serde::to_vec(&old).unwrap();
        let r: TaskRecord = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(r.state, TaskState::Failed);
        assert_eq!(r.history[1], (TaskState::Failed, 11));
        assert_eq!(
            r.limits,
            TaskLimits {
                timeout_ms: 5,
                memory_bytes: 6,
                output_bytes: 7
            }
        );
        assert_eq!(r.error, Some(Failure::new("trap", "boom")));
        assert_eq!(r.lost, 0);
        let again: TaskRecord = rmp_serde::from_slice(&rmp_serde::to_vec(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn an_unknown_state_is_an_error_not_a_default() {
        let mut old = Before {
            id: "t".into(),
            endpoint: "e".into(),
            function_id: "f".into(),
            export: "x".into(),
            args: vec![],
            limits: [0; 3],
            state: 99,
            history: vec![],
            result: None,
            error: None,
        };
        let e = rmp_serde::from_slice::<TaskRecord>(&rmp_serde::to_vec(&old).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown task state 99"), "{e}");
        old.state = 0;
        assert!(rmp_serde::from_slice::<TaskRecord>(&rmp_serde::to_vec(&old).unwrap()).is_err());
    }
}
