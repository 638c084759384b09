//! Outcomes: what an endpoint session reports of the tasks it was leased.

use super::{Broker, Failure, Result, TaskOutput, TaskState, Txn};

/// One task's end, as an endpoint reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub task_id: String,
    /// The lease the run was under (0: the endpoint did not say).
    pub lease: u32,
    pub result: std::result::Result<Vec<u8>, Failure>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub output: TaskOutput,
}

impl Broker {
    /// Records outcomes reported by session `sid`, all in one commit.
    ///
    /// An outcome counts only when `sid` holds the task's current lease; any
    /// other (a foreign session, a lease that expired and went elsewhere, a
    /// duplicate) is dropped and logged. A failure its submission allows to
    /// retry goes back to the queue instead. Returns how many counted.
    pub fn record_outcomes(&self, sid: u64, outcomes: Vec<Outcome>) -> Result<usize> {
        self.transition(|txn| {
            let mut accepted = 0;
            for o in outcomes {
                if txn.record_outcome(sid, o) {
                    accepted += 1;
                }
            }
            if let Some(endpoint) = txn.board.sessions.get(&sid).map(|s| s.endpoint.clone()) {
                txn.board.facts.entry(endpoint).or_default().tasks_run += accepted as u64;
            }
            txn.settle()?;
            Ok(accepted)
        })
    }
}

impl Txn<'_> {
    fn record_outcome(&mut self, sid: u64, o: Outcome) -> bool {
        let held = self
            .board
            .leases
            .get(&o.task_id)
            .is_some_and(|l| l.session == sid && (o.lease == 0 || o.lease == l.number));
        if !held {
            self.board.outcomes_refused += 1;
            tracing::warn!(
                task = %o.task_id,
                session = sid,
                lease = o.lease,
                "an outcome from a session that does not hold the task's lease; dropped"
            );
            return false;
        }
        let Some(mut rec) = self.board.tasks.get(&o.task_id).cloned() else {
            return false;
        };
        self.board.release(&o.task_id);
        rec.set_state(TaskState::Running, o.started_at_ms);
        rec.output = o.output;
        match o.result {
            Ok(bytes) => {
                rec.set_state(TaskState::Succeeded, o.finished_at_ms);
                if let Some(key) = rec.memo_key.as_ref().filter(|k| !k.is_empty()) {
                    self.memoize(key.clone(), bytes.clone());
                }
                rec.result = Some(bytes);
                rec.error = None;
                tracing::debug!(task = %rec.id, "succeeded");
                self.finish(rec);
            }
            Err(e) => {
                let retry = rec.attempts < rec.retries
                    && rec.retry_on.iter().any(|k| k == "*" || *k == e.kind);
                if retry {
                    rec.attempts += 1;
                    tracing::info!(task = %rec.id, kind = %e.kind, attempt = rec.attempts, "failed; retried");
                    rec.error = Some(e);
                    rec.set_state(TaskState::WaitingForEndpoint, o.finished_at_ms);
                    self.enqueue(rec, false);
                } else {
                    tracing::debug!(task = %rec.id, kind = %e.kind, "failed");
                    rec.set_state(TaskState::Failed, o.finished_at_ms);
                    rec.error = Some(e);
                    self.finish(rec);
                }
            }
        }
        true
    }
}
