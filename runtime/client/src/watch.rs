//! The one watch stream that resolves every future of a client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::auth::Conn;
use ferry_proto::v1::{self as pb, TaskInfo, TaskState, tasks_client::TasksClient};
use tokio::sync::{mpsc, oneshot};

/// One watch stream for the whole client, re-established (and every pending
/// id re-sent) if it breaks.
pub(crate) struct Watcher {
    pending: Mutex<HashMap<String, Vec<oneshot::Sender<TaskInfo>>>>,
    requests: mpsc::UnboundedSender<String>,
}

impl Watcher {
    pub(crate) fn start(tasks: TasksClient<Conn>) -> Arc<Watcher> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = Arc::new(Watcher {
            pending: Mutex::default(),
            requests: tx,
        });
        tokio::spawn(Watcher::run(Arc::downgrade(&watcher), tasks, rx));
        watcher
    }

    pub(crate) fn watch(&self, id: &str) -> oneshot::Receiver<TaskInfo> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .push(tx);
        let _ = self.requests.send(id.to_owned());
        rx
    }

    pub(crate) async fn run(
        me: std::sync::Weak<Watcher>,
        mut tasks: TasksClient<Conn>,
        mut requests: mpsc::UnboundedReceiver<String>,
    ) {
        loop {
            let (out, out_rx) = mpsc::unbounded_channel::<pb::WatchRequest>();
            // Re-send everything still pending (all of it, after a reconnect).
            let Some(w) = me.upgrade() else { return };
            let ids: Vec<String> = w
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect();
            drop(w);
            if !ids.is_empty() {
                let _ = out.send(pb::WatchRequest { task_ids: ids });
            }
            let stream = tasks
                .watch(tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx))
                .await;
            let mut events = match stream {
                Ok(s) => s.into_inner(),
                Err(s) if refused(&s) => {
                    Watcher::fail_all(&me, &s);
                    // Nothing to watch until a new id comes.
                    if requests.recv().await.is_none() {
                        return;
                    }
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    id = requests.recv() => {
                        let Some(id) = id else { return };
                        let mut ids = vec![id];
                        while let Ok(more) = requests.try_recv() {
                            ids.push(more);
                        }
                        let _ = out.send(pb::WatchRequest { task_ids: ids });
                    }
                    event = events.message() => {
                        let event = match event {
                            Ok(Some(e)) => e,
                            Err(s) if refused(&s) => {
                                Watcher::fail_all(&me, &s);
                                break;
                            }
                            _ => break,
                        };
                        let Some(info) = event.task else { continue };
                        // Final, or the service's answer for a task it does not know.
                        let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
                        let done = state.is_terminal()
                            || (state == TaskState::Unspecified && info.error.is_some());
                        if !done {
                            continue;
                        }
                        let Some(w) = me.upgrade() else { return };
                        let senders = w.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&info.id);
                        for s in senders.into_iter().flatten() {
                            let _ = s.send(info.clone());
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The service refused the watch itself (a token revoked or invalid):
    /// every pending future ends with its answer, none waits forever.
    fn fail_all(me: &std::sync::Weak<Watcher>, s: &tonic::Status) {
        let Some(w) = me.upgrade() else { return };
        let pending: Vec<_> = w
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (id, senders) in pending {
            let info = TaskInfo {
                id,
                error: Some(pb::TaskError {
                    kind: ferry_policy::FailureKind::Denied.into(),
                    message: s.message().to_owned(),
                }),
                ..Default::default()
            };
            for tx in senders {
                let _ = tx.send(info.clone());
            }
        }
    }
}

fn refused(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}
