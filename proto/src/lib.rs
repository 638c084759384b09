//! ferry's wire protocol.
//!
//! The gRPC services (`ferry/v1/*.proto`, compiled with tonic-prost-build and
//! protox) arrive with the fabric. Until then this crate pins the protocol
//! version that every other crate reports.

/// Version of the ferry protocol spoken by this build.
pub const PROTOCOL_VERSION: &str = "ferry.v1";
