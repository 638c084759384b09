//! Errors a client call can end with.

use ferry_policy::{FailureKind, Requirement};
use ferry_proto::transfer::TransferError;

/// Where the service puts the refused requirement and its kind.
const REQUIREMENT_METADATA: &str = "ferry-requirement-bin";
const KIND_METADATA: &str = "ferry-failure-kind-bin";

/// What can go wrong, from the connection to the task itself.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the ferry service at {url}: {message}")]
    Connect { url: String, message: String },
    /// The service refused the request (bad arguments, unknown function, ...).
    #[error("{message} ({code:?})")]
    Service { code: tonic::Code, message: String },
    /// The service refused the task because its endpoint cannot meet one
    /// of its requirements: no such camera, a mount not granted its
    /// function, no GPU.
    #[error("{message}")]
    Unmet {
        requirement: Requirement,
        kind: FailureKind,
        message: String,
    },
    /// The task ran and failed, or was cancelled.
    #[error("task {task_id} {kind}: {message}")]
    Task {
        task_id: String,
        kind: FailureKind,
        message: String,
    },
    #[error("cannot read component `{path}`: {message}")]
    Read { path: String, message: String },
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    #[error("task {task_id}: cannot decode its result as the requested type: {message}")]
    Decode { task_id: String, message: String },
    #[error("lost the watch on task {0}")]
    WatchLost(String),
    /// Reading or writing a local file for a blob.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// Downloaded bytes that do not hash to the blob's name.
    #[error("blob {expected}: the downloaded bytes hash to {actual}")]
    BlobMismatch { expected: String, actual: String },
    /// A downloaded blob with another size than expected.
    #[error("blob {hash} has {got} bytes, not the {expected} expected")]
    BlobSize {
        hash: String,
        expected: u64,
        got: u64,
    },
}

impl From<TransferError> for ClientError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Status(s) => s.into(),
            TransferError::File { path, error } => ClientError::File {
                path: path.display().to_string(),
                message: error.to_string(),
            },
            TransferError::Mismatch { expected, actual } => {
                ClientError::BlobMismatch { expected, actual }
            }
            TransferError::Size {
                hash,
                expected,
                got,
            } => ClientError::BlobSize {
                hash,
                expected,
                got,
            },
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        let meta = |key: &str| {
            let v = s.metadata().get_bin(key)?.to_bytes().ok()?;
            String::from_utf8(v.to_vec()).ok()
        };
        if s.code() == tonic::Code::FailedPrecondition
            && let Some(requirement) = meta(REQUIREMENT_METADATA).and_then(|r| r.parse().ok())
            && let Some(kind) = meta(KIND_METADATA).and_then(|k| k.parse().ok())
        {
            return ClientError::Unmet {
                requirement,
                kind,
                message: s.message().to_owned(),
            };
        }
        // A transport failure (a TLS alert, a reset) says what happened only
        // in its sources.
        let mut message = s.message().to_owned();
        let mut source = std::error::Error::source(&s);
        while let Some(e) = source {
            let more = e.to_string();
            if !message.contains(&more) {
                message = format!("{message}: {more}");
            }
            source = e.source();
        }
        ClientError::Service {
            code: s.code(),
            message,
        }
    }
}
