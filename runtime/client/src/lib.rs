//! `ferry-client`: the Rust SDK for a ferry service.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_client::ClientError> {
//! let client = ferry_client::Client::connect("http://127.0.0.1:7171").await?;
//! let f = client.register(&std::fs::read("pi.wasm").unwrap()).await?;
//! let pi: f64 = client.submit("local", &f.id, "pi", &(1_000_000u64, 42u64)).await?.await?;
//! # Ok(()) }
//! ```
//!
//! Arguments and results are serde types carried as MessagePack; a tuple is
//! the argument list. Futures resolve from one watch stream, never by polling.

mod auth;
mod backoff;
mod blobs;
mod client;
mod error;
mod future;
mod graph;
mod options;
mod watch;

pub use blobs::{BlobRef, Upload};
pub use client::{BATCHES_IN_FLIGHT, Client, Registered};
pub use error::ClientError;
pub use future::{TaskFuture, TaskRef, decode, join_all};
pub use graph::Graph;
pub use options::{SubmitOptions, WitResult};

pub use ferry_policy::{FailureKind, Requirement};
pub use ferry_proto::credentials;
pub use ferry_proto::tls::ClientTls;
pub use ferry_proto::transfer::Progress;
pub use ferry_proto::v1::{
    BlobInfo, EndpointInfo, EndpointPolicy, GcReport, Limits, TaskInfo, TaskState as State,
    TokenInfo, UserInfo, WhoAmIResponse as WhoAmI,
};
