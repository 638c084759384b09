//! Dataflow: tasks that wait for other tasks' results.
//!
//! A task with references waits in `waiting-for-dependencies`. Each finished
//! task settles its dependents: a success counts down their missing inputs,
//! and the last one fills in the arguments and queues the task; a failure
//! fails them (a cancellation cancels them), and so on down the graph.
//! Independent branches run on. Everything here is rebuilt from the store at
//! start, so a graph survives a restart of the service.

use std::collections::{HashMap, VecDeque};

use ferry_proto::v1::TaskState;
use tonic::Status;

use crate::Service;
use crate::grpc::{host_status, internal};
use crate::sched::{Sched, now_ms, set_state};
use crate::store::TaskRecord;

impl Sched {
    /// Registers a waiting task's producers that have not finished.
    pub(crate) fn wait_for(&mut self, task: &TaskRecord) {
        let mut missing = 0;
        for d in &task.deps {
            if self.tasks.contains_key(d) {
                missing += 1;
                self.dependents
                    .entry(d.clone())
                    .or_default()
                    .push(task.id.clone());
            }
        }
        self.missing.insert(task.id.clone(), missing);
    }
}

fn state(t: &TaskRecord) -> TaskState {
    TaskState::try_from(t.state).unwrap_or(TaskState::Unspecified)
}

impl Service {
    /// Waiting tasks found at start: registered again, and settled at once
    /// when their producers finished while the service was down.
    pub(crate) fn recover_dependencies(&self) -> anyhow::Result<()> {
        let waiting: Vec<String> = {
            let mut s = self.sched();
            let waiting: Vec<TaskRecord> = s
                .tasks
                .values()
                .filter(|t| state(t) == TaskState::WaitingForDependencies)
                .cloned()
                .collect();
            for t in &waiting {
                s.wait_for(t);
            }
            waiting.into_iter().map(|t| t.id).collect()
        };
        for id in waiting {
            self.check_dependencies(&id)
                .map_err(|e| anyhow::anyhow!("task {id}: {}", e.message()))?;
        }
        Ok(())
    }

    /// Looks at the producers of a waiting task that have finished already:
    /// one that failed fails it; if none is missing, it runs.
    pub(crate) fn check_dependencies(&self, id: &str) -> Result<(), Status> {
        let (deps, missing) = {
            let s = self.sched();
            let Some(t) = s.tasks.get(id) else {
                return Ok(());
            };
            let finished: Vec<String> = t
                .deps
                .iter()
                .filter(|d| !s.tasks.contains_key(*d))
                .cloned()
                .collect();
            (finished, s.missing.get(id).copied().unwrap_or(0))
        };
        for d in deps {
            let Some(p) = self.inner.store.task(&d).map_err(internal)? else {
                continue;
            };
            if state(&p) != TaskState::Succeeded {
                if let Some(failed) = self.fail_waiting(id, &p)? {
                    self.settle(vec![failed])?;
                }
                return Ok(());
            }
        }
        if missing == 0 {
            match self.resolve(id)? {
                Resolved::Queue(rec) => self.queue(vec![rec])?,
                Resolved::Ended(rec) => self.settle(vec![rec])?,
                Resolved::Gone => {}
            }
        }
        Ok(())
    }

    /// Passes finished tasks on to the tasks waiting for them, down the graph.
    ///
    /// The tasks this makes ready are stored in one commit, then queued: one
    /// producer feeding ten thousand consumers costs one fsync, not ten
    /// thousand.
    pub(crate) fn settle(&self, done: Vec<TaskRecord>) -> Result<(), Status> {
        let mut work: VecDeque<TaskRecord> = done.into();
        let mut queued = Vec::new();
        while let Some(d) = work.pop_front() {
            let consumers = self.sched().dependents.remove(&d.id).unwrap_or_default();
            if consumers.is_empty() {
                continue;
            }
            if state(&d) != TaskState::Succeeded {
                for c in consumers {
                    if let Some(failed) = self.fail_waiting(&c, &d)? {
                        work.push_back(failed);
                    }
                }
                continue;
            }
            let ready: Vec<String> = {
                let mut s = self.sched();
                consumers
                    .into_iter()
                    .filter(|c| match s.missing.get_mut(c) {
                        Some(m) => {
                            *m = m.saturating_sub(1);
                            *m == 0
                        }
                        None => false,
                    })
                    .collect()
            };
            for c in ready {
                match self.resolve(&c)? {
                    Resolved::Queue(rec) => queued.push(rec),
                    Resolved::Ended(rec) => work.push_back(rec),
                    Resolved::Gone => {}
                }
            }
        }
        self.queue(queued)
    }

    /// Stores resolved tasks, in one commit, and queues those still waiting
    /// (one cancelled meanwhile stays cancelled).
    fn queue(&self, mut ready: Vec<TaskRecord>) -> Result<(), Status> {
        if ready.is_empty() {
            return Ok(());
        }
        let at = now_ms();
        for rec in &mut ready {
            set_state(rec, TaskState::WaitingForEndpoint, at);
        }
        self.inner.store.put_tasks(&ready).map_err(internal)?;
        let mut s = self.sched();
        let mut endpoints = Vec::new();
        for rec in ready {
            let id = rec.id.clone();
            if !matches!(s.tasks.get(&id), Some(t) if state(t) == TaskState::WaitingForDependencies)
            {
                continue;
            }
            s.missing.remove(&id);
            s.queues
                .entry(rec.endpoint.clone())
                .or_default()
                .push_back(id.clone());
            if !endpoints.contains(&rec.endpoint) {
                endpoints.push(rec.endpoint.clone());
            }
            s.notify(&rec);
            s.tasks.insert(id, rec);
        }
        for endpoint in endpoints {
            s.dispatch(&endpoint);
        }
        Ok(())
    }

    /// Ends a waiting task because producer `p` did not succeed: failed, or
    /// cancelled with it. Returns the record, for its own dependents.
    fn fail_waiting(&self, id: &str, p: &TaskRecord) -> Result<Option<TaskRecord>, Status> {
        let reason = p
            .error
            .as_ref()
            .map_or_else(|| "no result".to_owned(), |(_, m)| m.clone());
        let (to, error) = if state(p) == TaskState::Cancelled {
            (
                TaskState::Cancelled,
                (
                    "cancelled".to_owned(),
                    format!("dependency {} was cancelled", p.id),
                ),
            )
        } else {
            (
                TaskState::Failed,
                (
                    "dependency".to_owned(),
                    format!("dependency {} failed: {reason}", p.id),
                ),
            )
        };
        self.end_waiting(id, to, error)
    }

    fn end_waiting(
        &self,
        id: &str,
        to: TaskState,
        error: (String, String),
    ) -> Result<Option<TaskRecord>, Status> {
        let rec = {
            let s = self.sched();
            match s.tasks.get(id) {
                Some(t) if state(t) == TaskState::WaitingForDependencies => {
                    let mut rec = t.clone();
                    set_state(&mut rec, to, now_ms());
                    rec.error = Some(error);
                    rec
                }
                _ => return Ok(None),
            }
        };
        self.conclude(&rec)?;
        Ok(Some(rec))
    }

    /// Stores a task's final record, then takes it out of the scheduler and
    /// tells its watchers; the caller settles its dependents.
    pub(crate) fn conclude(&self, rec: &TaskRecord) -> Result<(), Status> {
        self.inner
            .store
            .put_tasks(std::slice::from_ref(rec))
            .map_err(internal)?;
        let mut s = self.sched();
        s.missing.remove(&rec.id);
        if s.tasks.remove(&rec.id).is_some() {
            *s.finished.entry(rec.state).or_default() += 1;
            s.notify(rec);
        }
        Ok(())
    }

    /// Fills in a waiting task's arguments from its producers' results, for
    /// [`queue`](Self::queue); or ends it here (failed because a result does
    /// not fit, or answered from the memo).
    fn resolve(&self, id: &str) -> Result<Resolved, Status> {
        let Some(mut rec) = self.sched().tasks.get(id).cloned() else {
            return Ok(Resolved::Gone);
        };
        if state(&rec) != TaskState::WaitingForDependencies {
            return Ok(Resolved::Gone);
        }
        // A task cancelled meanwhile is no longer waiting: nothing to end.
        let fail = |message: String| -> Result<Resolved, Status> {
            Ok(self
                .end_waiting(id, TaskState::Failed, ("dependency".into(), message))?
                .map_or(Resolved::Gone, Resolved::Ended))
        };
        let mut results = HashMap::new();
        for d in &rec.deps {
            let p = self
                .inner
                .store
                .task(d)
                .map_err(internal)?
                .ok_or_else(|| Status::internal(format!("producer {d} of {id} is gone")))?;
            if let Some(r) = &p.result {
                let pf = self.function(&p.function_id)?;
                let pe = pf.export(&p.export).map_err(host_status)?;
                match crate::deps::fed_value(pe, r) {
                    Ok(v) => {
                        results.insert(d.clone(), v);
                    }
                    Err(m) => return fail(format!("dependency {d} failed: {m}")),
                }
            }
        }
        let mut values: Vec<serde_json::Value> =
            serde_json::from_str(rec.pending_args.as_deref().unwrap_or("[]")).map_err(internal)?;
        for v in &mut values {
            crate::deps::fill(v, &results);
        }
        let f = self.function(&rec.function_id)?;
        let export = f.export(&rec.export).map_err(host_status)?;
        let args = match export
            .args_from_json(&values)
            .and_then(|vals| export.args_to_msgpack(&vals))
        {
            Ok(a) => a,
            Err(e) => return fail(format!("the results of its dependencies do not fit: {e}")),
        };
        rec.args = args;
        rec.pending_args = None;
        let memoize = rec.memo_key.is_some();
        self.memo_lookup(&mut rec, memoize)?;
        if rec.cache_hit {
            self.conclude(&rec)?;
            // Its dependents are settled like those of any finished task.
            return Ok(Resolved::Ended(rec));
        }
        Ok(Resolved::Queue(rec))
    }
}

/// What resolving a waiting task came to.
enum Resolved {
    /// Its arguments are filled in: store it and queue it.
    Queue(TaskRecord),
    /// It ended here (failed, or answered from the memo): settle its
    /// dependents.
    Ended(TaskRecord),
    /// It is no longer waiting.
    Gone,
}
