//! Admission: a submission is checked against what the service knows (the
//! endpoint, the function's signature, the references it makes, the bounds)
//! and turned into a task record for the broker to admit.

use std::sync::atomic::{AtomicU64, Ordering};

use ferry_proto::v1::{self as pb, submit_request};
use ferry_wit::FailureKind;

use crate::Service;
use crate::audit::Event;
use crate::core::{Error, Principal, Result, TaskLimits, TaskRecord, TaskState, memo_key};
use crate::functions::wit_error;

/// Time-ordered, unique task ids: `<ms>-<sequence>-<random>` in hex.
fn new_task_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let r = h.finalize();
    format!(
        "{:012x}-{:08x}-{}",
        nanos / 1_000_000,
        seq & 0xffff_ffff,
        &r.to_hex()[..8]
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Refuses a task that needs a camera its endpoint does not grant its
/// function (`need`: `camera`, or `camera:NAME`).
impl Service {
    /// Validates, then has the broker store, queue and dispatch.
    pub(crate) fn accept(
        &self,
        who: &Principal,
        reqs: Vec<pb::SubmitRequest>,
    ) -> Result<Vec<String>> {
        let audit = &self.inner.audit;
        let refused = |e: Error| {
            audit.record(
                who,
                Event::SubmitRefused {
                    reason: &e.to_string(),
                },
            );
            e
        };
        let mut records: Vec<TaskRecord> = Vec::with_capacity(reqs.len());
        let many = reqs.len() > 1;
        for (i, req) in reqs.into_iter().enumerate() {
            match self.prepare(who, req, &records) {
                Ok(r) => records.push(r),
                Err(e) if many => {
                    return Err(refused(e.context(&format!("task {i} of the batch"))));
                }
                Err(e) => return Err(refused(e)),
            }
        }
        let ids = records.iter().map(|r| r.id.clone()).collect();
        // Kept for the trail only when there is one: admission is hot.
        let events: Vec<(String, String, String, String)> = if audit.is_on() {
            records
                .iter()
                .map(|r| {
                    (
                        r.id.clone(),
                        r.function_id.clone(),
                        r.export.clone(),
                        r.endpoint.clone(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        if who.admin {
            self.inner.broker.admit_unmetered(records)
        } else {
            self.inner.broker.admit(records)
        }
        .map_err(refused)?;
        for (task, function, export, endpoint) in &events {
            audit.record(
                who,
                Event::Submit {
                    task,
                    function,
                    export,
                    endpoint,
                },
            );
        }
        Ok(ids)
    }

    /// Checks one submission and turns it into a record; nothing is stored yet.
    fn prepare(
        &self,
        who: &Principal,
        req: pb::SubmitRequest,
        batch: &[TaskRecord],
    ) -> Result<TaskRecord> {
        let broker = &self.inner.broker;
        let Some(endpoint) = self.inner.identities.endpoint(&req.endpoint) else {
            let names: Vec<String> = self
                .inner
                .identities
                .endpoints(who)
                .into_iter()
                .map(|e| e.name)
                .collect();
            return Err(Error::not_found(format!(
                "unknown endpoint `{}`; endpoints you may use: {}",
                req.endpoint,
                if names.is_empty() {
                    "(none yet)".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        // Registered but never connected: nothing advertised yet.
        let grants = broker.endpoint_grants(&req.endpoint).flatten();
        let f = self.inner.functions.get(&req.function_id)?;
        let function_id = f.id.to_hex();
        let requires = ferry_proto::requirements_from_wire(&req.requires)
            .map_err(|e| Error::invalid(e.to_string()))?;
        // The same check the endpoint makes, on what its sessions
        // advertised: refused now when no session of the name could run
        // it; an endpoint that never said waits to be asked.
        if let Some(sessions) = &grants
            && !sessions.iter().any(|g| g.serves(&requires, &function_id))
            && let Some(Err(refusal)) = sessions
                .first()
                .map(|g| g.check_all(&requires, &function_id))
        {
            return Err(Error::Unmet(refusal));
        }
        let max_retries = broker.rules().max_retries;
        if req.retries > max_retries {
            return Err(Error::invalid(format!(
                "{} retries asked for; the service allows at most {max_retries}",
                req.retries
            )));
        }
        for kind in req.retry_on.iter().filter(|k| *k != "*") {
            let retryable = || {
                FailureKind::ALL
                    .iter()
                    .filter(|k| k.retryable())
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match kind.parse::<FailureKind>() {
                Ok(k) if k.retryable() => {}
                Ok(k) => {
                    return Err(Error::invalid(format!(
                        "retry-on `{k}`: a task that fails so would fail the same way again; retry on `*` or one of: {}",
                        retryable()
                    )));
                }
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "retry-on `{kind}` is not a failure kind; use `*` or one of: {}",
                        retryable()
                    )));
                }
            }
        }
        let export = f.export(&req.export).map_err(wit_error)?;
        export.check_supported().map_err(wit_error)?;
        let limits = req.limits.unwrap_or_default();
        let mut record = TaskRecord::new(
            new_task_id(),
            req.endpoint,
            function_id,
            export.name().to_owned(),
            ferry_proto::now_ms(),
        );
        record.owner = who.user.to_string();
        record.limits = TaskLimits {
            timeout_ms: limits.timeout_ms,
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
        };
        // The owner's policy: who, which functions, what limits, which
        // devices.
        endpoint.admit(who, &record.function_id, &record.limits, &requires)?;
        record.requires = requires;
        record.retries = req.retries;
        record.retry_on = req.retry_on;
        let memoize = req.memoize || self.memoized(&record.function_id);
        let values: Vec<serde_json::Value> = match req.args {
            Some(submit_request::Args::Msgpack(bytes)) => {
                self.check_size(bytes.len())?;
                if !contains(&bytes, b"$task") {
                    let vals = export.args_from_msgpack(&bytes).map_err(wit_error)?;
                    record.args = export.args_to_msgpack(&vals).map_err(wit_error)?;
                    self.check_blobs(who, |named| crate::blobs::named_blobs(&record.args, named))?;
                    self.memo_lookup(&mut record, memoize)?;
                    return Ok(record);
                }
                rmp_serde::from_slice(&bytes).map_err(|e| {
                    Error::invalid(format!(
                        "arguments with task references must be a MessagePack array of plain values: {e}"
                    ))
                })?
            }
            Some(submit_request::Args::Json(text)) => {
                self.check_size(text.len())?;
                serde_json::from_str(&text).map_err(|e| {
                    Error::invalid(format!(
                        "arguments must be a JSON array, one value per parameter: {e}"
                    ))
                })?
            }
            None => Vec::new(),
        };
        let mut found = Vec::new();
        if values.len() == export.params().len() {
            for ((name, ty), v) in export.params().iter().zip(&values) {
                crate::deps::find(v, ty, &format!("argument `{name}`"), &mut found);
            }
        }
        if found.is_empty() {
            let vals = export.args_from_json(&values).map_err(wit_error)?;
            record.args = export.args_to_msgpack(&vals).map_err(wit_error)?;
            self.check_blobs(who, |named| crate::blobs::named_blobs(&record.args, named))?;
            self.memo_lookup(&mut record, memoize)?;
            return Ok(record);
        }
        self.check_blobs(who, |named| {
            for v in &values {
                crate::blobs::named_in_json(v, named);
            }
        })?;
        self.check_references(who, &mut record, values, found, batch)?;
        if memoize {
            // Keyed once the arguments are known.
            record.memo_key = Some(String::new());
        }
        Ok(record)
    }

    /// With memoization on, keys the task by its final arguments and, on a
    /// hit, finishes it at once from the memo.
    fn memo_lookup(&self, record: &mut TaskRecord, memoize: bool) -> Result<()> {
        if !memoize {
            return Ok(());
        }
        let key = memo_key(
            &record.owner,
            &record.function_id,
            &record.export,
            &record.args,
        );
        if let Some(result) = self.inner.store.memo(&key).map_err(Error::internal)? {
            record.set_state(TaskState::Succeeded, ferry_proto::now_ms());
            record.result = Some(result);
            record.cache_hit = true;
        }
        record.memo_key = Some(key);
        Ok(())
    }

    /// Checks that every reference names an existing task whose result fits
    /// where it stands, and makes `record` wait for them.
    fn check_references(
        &self,
        who: &Principal,
        record: &mut TaskRecord,
        mut values: Vec<serde_json::Value>,
        found: Vec<crate::deps::Found>,
        batch: &[TaskRecord],
    ) -> Result<()> {
        let in_batch = |r: &str| -> Result<Option<String>> {
            let Some(i) = r.strip_prefix('#') else {
                return Ok(None);
            };
            let i: usize = i
                .parse()
                .map_err(|_| Error::invalid(format!("`{r}` is not a task reference")))?;
            batch.get(i).map(|t| Some(t.id.clone())).ok_or_else(|| {
                Error::invalid(format!(
                    "reference `{r}`: a task may refer only to earlier tasks of its batch"
                ))
            })
        };
        let mut deps: Vec<String> = Vec::new();
        for r in &found {
            let id = in_batch(&r.id)?.unwrap_or_else(|| r.id.clone());
            let producer = match batch.iter().find(|t| t.id == id) {
                Some(t) => t.clone(),
                None => self.inner.broker.task(&id)?.ok_or_else(|| {
                    Error::not_found(format!(
                        "{} refers to task {id}, which does not exist (a reference names a task submitted before)",
                        r.at
                    ))
                })?,
            };
            // Another user's result is not an argument one may pass on.
            who.check(&producer).map_err(|e| e.context(&r.at))?;
            let pf = self.inner.functions.get(&producer.function_id)?;
            let pe = pf.export(&producer.export).map_err(wit_error)?;
            let fed = crate::deps::fed_type(pe)
                .map_err(|m| Error::invalid(format!("{} refers to task {id}, but {m}", r.at)))?;
            if !fed.fits(&r.want) {
                return Err(Error::invalid(format!(
                    "{} expects {}, but task {id} (`{}`) gives {fed}",
                    r.at,
                    r.want,
                    pe.name()
                )));
            }
            if !deps.contains(&id) {
                deps.push(id);
            }
        }
        let rename = |r: &str| in_batch(r).ok().flatten();
        for v in &mut values {
            crate::deps::rename(v, &rename);
        }
        let now = record.history[0].1;
        record.state = TaskState::WaitingForDependencies;
        record.history = vec![(TaskState::WaitingForDependencies, now)];
        record.pending_args = Some(serde_json::Value::Array(values).to_string());
        record.deps = deps;
        Ok(())
    }

    /// A task may name only blobs its submitter may read: a blob's name
    /// does not lend its bytes to another user's task. A name no blob has
    /// is left for the endpoint to report, since any 64-digit hex string
    /// reads as one.
    fn check_blobs(
        &self,
        who: &Principal,
        find: impl FnOnce(&mut std::collections::HashSet<String>),
    ) -> Result<()> {
        if who.admin {
            return Ok(());
        }
        let mut named = std::collections::HashSet::new();
        find(&mut named);
        for hash in named {
            if self.inner.grants.may_read(who, &hash) {
                continue;
            }
            let stored = blake3::Hash::from_hex(&hash)
                .ok()
                .and_then(|h| self.inner.blobs.stat(&h));
            if stored.is_some() {
                return Err(Error::not_found(format!(
                    "unknown blob {hash}: a task may name only blobs that its submitter uploaded or that their tasks wrote"
                )));
            }
        }
        Ok(())
    }

    fn check_size(&self, len: usize) -> Result<()> {
        if len > self.inner.config.max_args_bytes {
            return Err(Error::exhausted(format!(
                "arguments are {len} bytes, over the limit of {} bytes; pass large data as a blob",
                self.inner.config.max_args_bytes
            )));
        }
        Ok(())
    }

    pub(crate) fn memoized(&self, function_id: &str) -> bool {
        self.inner
            .memoized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(function_id)
    }
}
