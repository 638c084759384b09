//! How a task is submitted, and the `result` shape of a WIT result.

use ferry_policy::{FailureKind, Requirement};
use ferry_proto::v1 as pb;

/// A WIT `result<T, E>` as ferry encodes it: `{"ok": T}` or `{"err": E}`.
/// Convert with `Result::from`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WitResult<T, E> {
    Ok(T),
    Err(E),
}

impl<T, E> From<WitResult<T, E>> for Result<T, E> {
    fn from(r: WitResult<T, E>) -> Self {
        match r {
            WitResult::Ok(v) => Ok(v),
            WitResult::Err(e) => Err(e),
        }
    }
}

/// Per-submission settings beyond the arguments.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Limits for this task; zero fields take the endpoint's defaults.
    pub limits: Option<pb::Limits>,
    /// Keep the result and answer identical later submissions from it.
    pub memoize: bool,
    /// Runs allowed after the first, for failures of the kinds in
    /// `retry_on` (`"timeout"`, `"trap"`, ..., or `"*"`: see
    /// [`FailureKind`]).
    pub retries: u32,
    pub retry_on: Vec<String>,
    /// What the task needs from its endpoint: its GPU, a camera, a mount or
    /// a variable granted to its function. The service refuses the task up
    /// front ([`ClientError::Unmet`](crate::ClientError::Unmet)) when the
    /// endpoint's advertisement cannot meet one; otherwise the endpoint
    /// fails it with the reason before running anything.
    pub requires: Vec<Requirement>,
}

impl SubmitOptions {
    pub(crate) fn apply(&self, req: &mut pb::SubmitRequest) {
        req.limits = self.limits;
        req.requires = self.requires.iter().map(Into::into).collect();
        req.memoize = self.memoize;
        req.retries = self.retries;
        req.retry_on = self.retry_on.clone();
    }

    /// A task that needs the endpoint's GPU.
    pub fn gpu() -> Self {
        SubmitOptions {
            requires: vec![Requirement::Gpu],
            ..SubmitOptions::default()
        }
    }

    /// Memoized: an identical submission later runs nothing.
    pub fn memoized(mut self) -> Self {
        self.memoize = true;
        self
    }

    /// Retried up to `times` after failures of these kinds.
    pub fn retry(mut self, times: u32, on: &[&str]) -> Self {
        self.retries = times;
        self.retry_on = on.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Retried up to `times` after failures of these kinds, typed.
    pub fn retry_kinds(mut self, times: u32, on: &[FailureKind]) -> Self {
        self.retries = times;
        self.retry_on = on.iter().map(|k| k.to_string()).collect();
        self
    }

    /// Also needs `requirement` of its endpoint.
    pub fn require(mut self, requirement: Requirement) -> Self {
        self.requires.push(requirement);
        self
    }

    /// Also needs the endpoint's mount at `guest` (e.g. `/data`) granted to
    /// this function.
    pub fn mount(self, guest: &str) -> Self {
        self.require(Requirement::mount(guest))
    }

    /// Also needs the endpoint's camera `name` granted to this function.
    pub fn camera(self, name: &str) -> Self {
        self.require(Requirement::camera(name))
    }

    /// Also needs the endpoint's variable `name` granted to this function.
    pub fn env(self, name: &str) -> Self {
        self.require(Requirement::env(name))
    }
}
