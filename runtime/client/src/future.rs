//! Futures of task results, and references that feed one task to another.

use ferry_policy::FailureKind;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_proto::v1::{TaskInfo, TaskState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::ClientError;

/// Resolves to a task's result once the service pushes its final state.
pub struct TaskFuture<R> {
    pub(crate) task_id: String,
    pub(crate) rx: oneshot::Receiver<TaskInfo>,
    pub(crate) _r: PhantomData<fn() -> R>,
}

impl<R> TaskFuture<R> {
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// This task's result as an argument of another task, anywhere inside
    /// its arguments: the service runs the consumer once this task has
    /// succeeded, and the value never comes back to this process.
    pub fn arg(&self) -> TaskRef {
        TaskRef(self.task_id.clone())
    }
}

/// Another task's result, standing in for a value in a task's arguments.
/// It is encoded as `{"$task": "<id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskRef(pub String);

impl TaskRef {
    /// The result of task `id`, submitted earlier by any process.
    pub fn to(id: impl Into<String>) -> TaskRef {
        TaskRef(id.into())
    }
}

impl Serialize for TaskRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("$task", &self.0)?;
        m.end()
    }
}

/// Awaits every future, in order; the first error ends the wait.
pub async fn join_all<R: DeserializeOwned>(
    futures: impl IntoIterator<Item = TaskFuture<R>>,
) -> Result<Vec<R>, ClientError> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await?);
    }
    Ok(out)
}

impl<R: DeserializeOwned> Future for TaskFuture<R> {
    type Output = Result<R, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let info = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => {
                return Poll::Ready(Err(ClientError::WatchLost(self.task_id.clone())));
            }
            Poll::Ready(Ok(info)) => info,
        };
        Poll::Ready(decode(&self.task_id, info))
    }
}

/// The result of a finished task as `R`, or its error.
pub fn decode<R: DeserializeOwned>(task_id: &str, info: TaskInfo) -> Result<R, ClientError> {
    if info.state == TaskState::Succeeded as i32 {
        return rmp_serde::from_slice(&info.result).map_err(|e| ClientError::Decode {
            task_id: task_id.to_owned(),
            message: e.to_string(),
        });
    }
    // A kind this build does not know (from a newer service) is ferry's
    // own failure; its message still says what happened.
    let (kind, message) = info
        .error
        .map(|e| (e.kind.parse().unwrap_or(FailureKind::Internal), e.message))
        .unwrap_or_else(|| (FailureKind::Internal, "no error recorded".into()));
    Err(ClientError::Task {
        task_id: task_id.to_owned(),
        kind,
        message,
    })
}
