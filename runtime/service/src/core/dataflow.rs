//! Dataflow: tasks that wait for other tasks' results.
//!
//! A task with references waits in `waiting-for-dependencies`. Each finished
//! task settles its dependents: a success counts down their missing inputs,
//! and the last one fills in the arguments and queues the task; a failure
//! fails them (a cancellation cancels them), and so on down the graph.
//! Independent branches run on. All of it happens inside the transition
//! that finished the producer, so it is stored in that one commit, and it is
//! rebuilt from the store at start.

use ferry_wit::FailureKind;
use std::collections::HashMap;

use super::{Error, Failure, Result, TaskRecord, TaskState, Txn};

/// blake3 of submitter, function, export and canonical arguments: the
/// memo's key. The submitter is in it so that one user's result never
/// answers another's submission.
pub fn memo_key(owner: &str, function_id: &str, export: &str, args: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(owner.as_bytes());
    h.update(&[0]);
    h.update(function_id.as_bytes());
    h.update(&[0]);
    h.update(export.as_bytes());
    h.update(&[0]);
    h.update(args);
    h.finalize().to_hex().to_string()
}

impl Txn<'_> {
    /// Puts a task on the board to wait for its producers that have not
    /// finished.
    pub(crate) fn wait(&mut self, rec: TaskRecord) {
        self.register_waiting(&rec);
        self.board.hold(rec.clone());
        self.changed(rec);
    }

    fn register_waiting(&mut self, task: &TaskRecord) {
        let mut missing = 0;
        for d in &task.deps {
            if self.board.tasks.contains_key(d) {
                missing += 1;
                self.board
                    .dependents
                    .entry(d.clone())
                    .or_default()
                    .push(task.id.clone());
            }
        }
        self.board.missing.insert(task.id.clone(), missing);
    }

    /// Waiting tasks found at start: registered again, and settled at once
    /// when their producers finished while the service was down.
    pub(crate) fn recover_dependencies(&mut self) -> Result<()> {
        let waiting: Vec<TaskRecord> = self
            .board
            .tasks
            .values()
            .filter(|t| t.state == TaskState::WaitingForDependencies)
            .cloned()
            .collect();
        for t in &waiting {
            self.register_waiting(t);
        }
        for t in waiting {
            self.check_dependencies(&t.id)
                .map_err(|e| e.context(&format!("task {}", t.id)))?;
        }
        Ok(())
    }

    /// Looks at the producers of a waiting task that have finished already:
    /// one that failed fails it; if none is missing, it runs.
    pub(crate) fn check_dependencies(&mut self, id: &str) -> Result<()> {
        let Some(t) = self.board.tasks.get(id) else {
            return Ok(());
        };
        let finished: Vec<String> = t
            .deps
            .iter()
            .filter(|d| !self.board.tasks.contains_key(d))
            .cloned()
            .collect();
        let missing = self.board.missing.get(id).copied().unwrap_or(0);
        for d in finished {
            let Some(p) = self.record(&d)? else {
                continue;
            };
            if p.state != TaskState::Succeeded {
                self.fail_waiting(id, &p);
                return self.settle();
            }
        }
        if missing == 0 {
            self.resolve(id)?;
        }
        self.settle()
    }

    /// Passes finished tasks on to the tasks waiting for them, down the
    /// graph.
    pub(crate) fn settle(&mut self) -> Result<()> {
        while let Some(d) = self.settling.pop() {
            let consumers = self.board.dependents.remove(&d.id).unwrap_or_default();
            if d.state != TaskState::Succeeded {
                for c in consumers {
                    self.fail_waiting(&c, &d);
                }
                continue;
            }
            for c in consumers {
                let ready = match self.board.missing.get_mut(&c) {
                    Some(m) => {
                        *m = m.saturating_sub(1);
                        *m == 0
                    }
                    None => false,
                };
                if ready {
                    self.resolve(&c)?;
                }
            }
        }
        Ok(())
    }

    /// Ends a waiting task because producer `p` did not succeed: failed, or
    /// cancelled with it.
    fn fail_waiting(&mut self, id: &str, p: &TaskRecord) {
        let failure = if p.state == TaskState::Cancelled {
            (
                TaskState::Cancelled,
                Failure::new(
                    FailureKind::Cancelled,
                    format!("dependency {} was cancelled", p.id),
                ),
            )
        } else {
            let reason = p
                .error
                .as_ref()
                .map_or_else(|| "no result".to_owned(), |e| e.message.clone());
            (
                TaskState::Failed,
                Failure::new(
                    FailureKind::Dependency,
                    format!("dependency {} failed: {reason}", p.id),
                ),
            )
        };
        self.end_waiting(id, failure.0, failure.1);
    }

    fn end_waiting(&mut self, id: &str, to: TaskState, error: Failure) {
        let Some(t) = self.board.tasks.get(id) else {
            return;
        };
        if t.state != TaskState::WaitingForDependencies {
            return;
        }
        let mut rec = t.clone();
        rec.set_state(to, ferry_proto::now_ms());
        rec.error = Some(error);
        self.finish(rec);
    }

    /// Fills in a waiting task's arguments from its producers' results and
    /// queues it; or ends it here (failed because a result does not fit, or
    /// answered from the memo).
    fn resolve(&mut self, id: &str) -> Result<()> {
        let Some(mut rec) = self.board.tasks.get(id).cloned() else {
            return Ok(());
        };
        if rec.state != TaskState::WaitingForDependencies {
            return Ok(());
        }
        let mut results = HashMap::new();
        for d in &rec.deps {
            let p = self
                .record(d)?
                .ok_or_else(|| Error::internal(format!("producer {d} of {id} is gone")))?;
            if let Some(r) = &p.result {
                match self.catalog.fed_value(&p.function_id, &p.export, r) {
                    Ok(v) => {
                        results.insert(d.clone(), v);
                    }
                    Err(m) => {
                        self.end_waiting(
                            id,
                            TaskState::Failed,
                            Failure::new(
                                FailureKind::Dependency,
                                format!("dependency {d} failed: {m}"),
                            ),
                        );
                        return Ok(());
                    }
                }
            }
        }
        let mut values: Vec<serde_json::Value> =
            serde_json::from_str(rec.pending_args.as_deref().unwrap_or("[]"))
                .map_err(Error::internal)?;
        for v in &mut values {
            crate::deps::fill(v, &results);
        }
        let args = match self
            .catalog
            .args_from_json(&rec.function_id, &rec.export, &values)
        {
            Ok(a) => a,
            Err(e) => {
                self.end_waiting(
                    id,
                    TaskState::Failed,
                    Failure::new(
                        FailureKind::Dependency,
                        format!("the results of its dependencies do not fit: {e}"),
                    ),
                );
                return Ok(());
            }
        };
        rec.args = args;
        rec.pending_args = None;
        self.board.missing.remove(id);
        let now = ferry_proto::now_ms();
        if rec.memo_key.is_some() {
            let key = memo_key(&rec.owner, &rec.function_id, &rec.export, &rec.args);
            let hit = self.memo_hit(&key)?;
            rec.memo_key = Some(key);
            if let Some(result) = hit {
                rec.set_state(TaskState::Succeeded, now);
                rec.result = Some(result);
                rec.cache_hit = true;
                self.finish(rec);
                return Ok(());
            }
        }
        rec.set_state(TaskState::WaitingForEndpoint, now);
        self.enqueue(rec, false);
        Ok(())
    }

    /// A memoized result: written earlier in this transition, or stored.
    pub(crate) fn memo_hit(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if let Some((_, r)) = self.memo_pending(key) {
            return Ok(Some(r.clone()));
        }
        self.store.memo(key).map_err(Error::internal)
    }
}
