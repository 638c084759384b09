//! ferry's wire protocol (`proto/ferry/v1/ferry.proto`), generated at build
//! time with protox and tonic-prost-build.

#![allow(clippy::all, missing_docs)]

pub mod auth;
pub mod credentials;
mod policy;
pub mod tls;
pub mod transfer;

pub use policy::{offers_from_wire, requirements_from_wire};

/// Version of the ferry protocol spoken by this build.
pub const PROTOCOL_VERSION: &str = "ferry.v1";

/// HTTP/2 flow-control windows for ferry's connections: wide enough that a
/// blob stream is not held to a round trip per 64 KiB (the HTTP/2 default).
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 32 << 20;

/// HTTP/2 pings on every ferry connection, both ways: a half-open
/// connection is found within interval + timeout, not when a TCP write
/// finally fails.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How ferry dials a service: no Nagle delay, wide flow-control windows,
/// and TLS as `tls` says when `url` is `https://`.
pub fn dial(
    url: &str,
    tls: &tls::ClientTls,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?;
    Ok(tls
        .apply(url, endpoint)?
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW))
}

/// Wall-clock time as the protocol's `*_ms` fields carry it: Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub mod v1 {
    tonic::include_proto!("ferry.v1");

    /// The encoded descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ferry_descriptor");

    impl TaskState {
        /// Whether no further change can happen.
        pub fn is_terminal(self) -> bool {
            matches!(
                self,
                TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
            )
        }

        /// The name `ferry status` and the CLI print.
        pub fn label(self) -> &'static str {
            match self {
                TaskState::Unspecified => "unspecified",
                TaskState::WaitingForEndpoint => "waiting-for-endpoint",
                TaskState::Dispatched => "dispatched",
                TaskState::Running => "running",
                TaskState::Succeeded => "succeeded",
                TaskState::Failed => "failed",
                TaskState::Cancelled => "cancelled",
                TaskState::WaitingForDependencies => "waiting-for-dependencies",
            }
        }
    }
}
