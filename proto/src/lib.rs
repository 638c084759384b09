//! ferry's wire protocol (`proto/ferry/v1/ferry.proto`), generated at build
//! time with protox and tonic-prost-build.

#![allow(clippy::all, missing_docs)]

pub mod transfer;

/// Version of the ferry protocol spoken by this build.
pub const PROTOCOL_VERSION: &str = "ferry.v1";

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
            }
        }
    }
}
