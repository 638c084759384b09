//! The one stream an endpoint holds with the service: hello and credits,
//! assignments run as they arrive, heartbeats that list what is held, and
//! outcomes sent back in batches.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ferry_host::FailureKind;
use ferry_proto::now_ms;
use ferry_proto::v1::{
    Assignment, EndpointMessage, Heartbeat, Hello, ResultBatch, TaskError, TaskOutcome,
    endpoint_message, endpoints_client::EndpointsClient, service_message, task_outcome,
};
use futures::FutureExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::Agent;
use crate::window::Window;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Result bytes past which a batch of outcomes takes no more.
const BATCH_BYTES: usize = 8 << 20;

fn outcome_bytes(o: &TaskOutcome) -> usize {
    match &o.outcome {
        Some(task_outcome::Outcome::Result(b)) => b.len(),
        _ => 0,
    }
}

type Running = Arc<Mutex<HashMap<String, JoinHandle<()>>>>;

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The service closed it: dial again.
    Closed,
    /// The service drained this worker (its block is scaled in): every task
    /// it held ran and was answered, so the agent exits.
    Drained,
}

/// Tasks held here whose outcomes have not yet gone to the service: a
/// draining worker leaves when this reaches zero.
#[derive(Default)]
struct Outstanding {
    count: AtomicUsize,
    settled: Notify,
}

impl Outstanding {
    fn add(&self, n: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
    }

    fn done(&self, n: usize) {
        if n > 0 && self.count.fetch_sub(n, Ordering::SeqCst) == n {
            self.settled.notify_one();
        }
    }

    fn none(&self) -> bool {
        self.count.load(Ordering::SeqCst) == 0
    }
}

/// Aborts a session's helper tasks and the tasks it runs when dropped. The
/// service requeues what was in flight.
struct Teardown {
    tasks: Vec<JoinHandle<()>>,
    running: Running,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for (_, h) in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            h.abort();
        }
    }
}

impl Agent {
    pub(super) async fn session(self: Arc<Self>) -> anyhow::Result<Ended> {
        let channel = ferry_proto::dial(&self.config.service, &self.config.tls)
            .with_context(|| format!("bad service URL `{}`", self.config.service))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach the service at {}", self.config.service))?;
        let channel = ferry_proto::auth::Conn::new(channel, self.bearer.clone());
        let mut client = EndpointsClient::new(channel).max_decoding_message_size(64 << 20);
        let (out, out_rx) = mpsc::channel::<EndpointMessage>(1024);
        let send = |kind| EndpointMessage { kind: Some(kind) };
        out.send(send(endpoint_message::Kind::Hello(Hello {
            name: self.config.name.clone(),
            concurrency: self.config.concurrency,
            version: env!("CARGO_PKG_VERSION").into(),
            offers: self.grants.offers().iter().map(Into::into).collect(),
            block: self.config.block.clone().unwrap_or_default(),
        })))
        .await?;
        let window = Arc::new(Mutex::new(Window::new(
            self.config.concurrency,
            self.config.prefetch,
        )));
        let credits = lock(&window).open();
        out.send(send(endpoint_message::Kind::Credits(credits)))
            .await?;
        let mut incoming = client
            .session(ReceiverStream::new(out_rx))
            .await?
            .into_inner();

        let running: Running = Arc::default();
        let outstanding = Arc::new(Outstanding::default());
        let draining = Arc::new(AtomicBool::new(false));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(TaskOutcome, Duration)>();
        // Results go up in batches: whatever finished while the last batch
        // was sent; the credits with them keep the window full.
        let results_out = out.clone();
        let batch_window = window.clone();
        let (batch_outstanding, batch_draining) = (outstanding.clone(), draining.clone());
        let batcher = tokio::spawn(async move {
            while let Some(first) = done_rx.recv().await {
                let mut ran = first.1;
                let mut bytes = outcome_bytes(&first.0);
                let mut outcomes = vec![first.0];
                // Bounded in count and in bytes, so that large results do
                // not pass the service's message limit together.
                while outcomes.len() < 1024 && bytes < BATCH_BYTES {
                    match done_rx.try_recv() {
                        Ok((o, took)) => {
                            bytes += outcome_bytes(&o);
                            outcomes.push(o);
                            ran += took;
                        }
                        Err(_) => break,
                    }
                }
                let n = outcomes.len();
                let mut credits = lock(&batch_window).ended(n as u32, ran);
                // A draining worker asks for nothing more.
                if batch_draining.load(Ordering::SeqCst) {
                    credits = 0;
                }
                let results = send(endpoint_message::Kind::Results(ResultBatch { outcomes }));
                let sent = results_out.send(results).await.is_ok();
                batch_outstanding.done(n);
                if !sent
                    || (credits > 0
                        && results_out
                            .send(send(endpoint_message::Kind::Credits(credits)))
                            .await
                            .is_err())
                {
                    break;
                }
            }
        });
        let beat_out = out.clone();
        let period = self.config.heartbeat;
        let held = running.clone();
        // Each heartbeat lists every task held here, renewing their leases.
        let heart = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let at_ms = now_ms();
                let holding = held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                if beat_out
                    .send(send(endpoint_message::Kind::Heartbeat(Heartbeat {
                        at_ms,
                        holding,
                    })))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        // Ends the session's tasks when it ends, or when it is dropped (the
        // endpoint shutting down): then the stream to the service closes at
        // once, instead of heartbeating a session that runs nothing.
        let teardown = Teardown {
            tasks: vec![heart, batcher],
            running: running.clone(),
        };

        let result = loop {
            if draining.load(Ordering::SeqCst) && outstanding.none() {
                break Ok(Ended::Drained);
            }
            let next = tokio::select! {
                m = incoming.message() => m,
                () = outstanding.settled.notified(), if draining.load(Ordering::SeqCst) => continue,
            };
            let msg = match next {
                Ok(Some(m)) => m,
                Ok(None) => break Ok(Ended::Closed),
                Err(e) => break Err(anyhow::Error::from(e).context("the session stream broke")),
            };
            match msg.kind {
                Some(service_message::Kind::Welcome(w)) => {
                    tracing::info!(endpoint = %self.config.name, session = %w.session_id, "connected");
                }
                Some(service_message::Kind::Tasks(batch)) => {
                    for a in batch.tasks {
                        if self.abort_on.as_deref() == Some(a.export.as_str()) {
                            tracing::error!(task = %a.task_id, "FERRY_TEST_ABORT_ON_EXPORT: aborting the process");
                            std::process::abort();
                        }
                        let id = a.task_id.clone();
                        let agent = self.clone();
                        let done = done_tx.clone();
                        let running2 = running.clone();
                        // Held across the spawn, so that a task that ends at once
                        // cannot remove itself before it is listed (a stale entry
                        // would be reported in heartbeats and freed twice).
                        let mut held = running.lock().unwrap_or_else(|p| p.into_inner());
                        outstanding.add(1);
                        let handle = tokio::spawn(async move {
                            let Ok(_permit) = agent.workers.clone().acquire_owned().await else {
                                return;
                            };
                            let (task_id, lease) = (a.task_id.clone(), a.lease);
                            let began = std::time::Instant::now();
                            // A panic in the runner is the task's failure, never a
                            // silent loss of its slot.
                            let outcome = match AssertUnwindSafe(agent.run_task(a))
                                .catch_unwind()
                                .await
                            {
                                Ok(o) => o,
                                Err(_) => {
                                    tracing::error!(task = %task_id, "the task's runner panicked");
                                    TaskOutcome {
                                        task_id,
                                        lease,
                                        outcome: Some(task_outcome::Outcome::Error(TaskError {
                                            kind: FailureKind::Internal.into(),
                                            message: "the endpoint failed while running the task"
                                                .into(),
                                        })),
                                        started_at_ms: now_ms(),
                                        finished_at_ms: now_ms(),
                                        output: None,
                                    }
                                }
                            };
                            // Cancelled meanwhile: the cancel freed its slot,
                            // and its outcome is moot.
                            let mine = running2
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&outcome.task_id)
                                .is_some();
                            if mine {
                                let _ = done.send((outcome, began.elapsed()));
                            }
                        });
                        held.insert(id, handle);
                    }
                }
                Some(service_message::Kind::Cancel(c)) => {
                    let mut freed = 0;
                    for id in c.task_ids {
                        if let Some(h) = running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id)
                        {
                            h.abort();
                            freed += 1;
                        }
                    }
                    outstanding.done(freed as usize);
                    let credits = lock(&window).freed(freed);
                    if credits > 0 && !draining.load(Ordering::SeqCst) {
                        let _ = out
                            .send(send(endpoint_message::Kind::Credits(credits)))
                            .await;
                    }
                }
                Some(service_message::Kind::Drain(_)) => {
                    tracing::info!(
                        endpoint = %self.config.name,
                        block = self.config.block.as_deref().unwrap_or(""),
                        holding = lock(&running).len(),
                        "draining: taking no more tasks, finishing those held"
                    );
                    draining.store(true, Ordering::SeqCst);
                }
                Some(service_message::Kind::Heartbeat(_)) | None => {}
            }
        };
        drop(teardown);
        if let Ok(Ended::Drained) = result {
            // Every outcome is queued on the stream: closing our side lets
            // the service read them, then end the session; wait for that,
            // so that the process exits only once they are delivered.
            drop(out);
            drop(done_tx);
            while let Ok(Some(_)) = incoming.message().await {}
            tracing::info!(endpoint = %self.config.name, "drained; leaving");
        }
        result
    }

    async fn run_task(&self, a: Assignment) -> TaskOutcome {
        let started_at_ms = now_ms();
        let mut output = None;
        let outcome = match self.call(&a, &mut output).await {
            Ok(bytes) => task_outcome::Outcome::Result(bytes),
            Err(e) => task_outcome::Outcome::Error(e),
        };
        // What ran here, and for whom: the endpoint's own trail.
        let result = match &outcome {
            task_outcome::Outcome::Result(_) => "ok",
            task_outcome::Outcome::Error(e) => e.kind.as_str(),
        };
        tracing::info!(
            target: "ferry::audit",
            task = %a.task_id,
            function = %a.function_id,
            export = %a.export,
            submitter = %a.submitter,
            result,
            ms = now_ms() - started_at_ms,
            "ran"
        );
        TaskOutcome {
            task_id: a.task_id,
            lease: a.lease,
            outcome: Some(outcome),
            started_at_ms,
            finished_at_ms: now_ms(),
            output,
        }
    }

    async fn call(
        &self,
        a: &Assignment,
        output: &mut Option<ferry_proto::v1::TaskOutput>,
    ) -> Result<Vec<u8>, TaskError> {
        let err = |e: ferry_host::Error| TaskError {
            kind: e.kind().into(),
            message: e.to_string(),
        };
        self.check_requirements(a)?;
        let f = self.function(&a.function_id).await?;
        let export = f.export(&a.export).map_err(err)?;
        let args = export.args_from_msgpack(&a.args).map_err(err)?;
        let limits = self.limits(a.limits.as_ref()).map_err(err)?;
        let options = &self.options;
        let captured = |stdout: &ferry_host::Captured,
                        stderr: &ferry_host::Captured,
                        logs: &[ferry_host::LogEvent],
                        logs_dropped: u64| ferry_proto::v1::TaskOutput {
            stdout: stdout.bytes.clone(),
            stderr: stderr.bytes.clone(),
            logs: logs.iter().map(|e| e.to_string()).collect(),
            truncated: stdout.dropped + stderr.dropped + logs_dropped,
        };
        let out = match self
            .host
            .call_keeping_output(&f, export, &args, &limits, options)
            .await
        {
            Ok(out) => out,
            Err(failed) => {
                // What a failed task printed and logged is what its user
                // most needs to see.
                let o = &failed.output;
                *output = Some(captured(&o.stdout, &o.stderr, &o.logs, o.logs_dropped));
                return Err(err(failed.error));
            }
        };
        *output = Some(captured(
            &out.stdout,
            &out.stderr,
            &out.logs,
            out.logs_dropped,
        ));
        // New blobs reach the service before the result that names them.
        for blob in &out.blobs {
            self.blobs
                .send(blob, &a.task_id)
                .await
                .map_err(|e| TaskError {
                    kind: FailureKind::BlobUpload.into(),
                    message: format!("sending new blob {} to the service: {e:#}", blob.hash),
                })?;
        }
        export.result_to_msgpack(out.result.as_ref()).map_err(err)
    }
}
