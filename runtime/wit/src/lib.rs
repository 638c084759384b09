//! `ferry-wit`: the WIT side of ferry without a runtime.
//!
//! - [`WitType`] and [`Signature`]: the types in a function's signature,
//!   printed in WIT syntax.
//! - [`Value`] and the codec of [`Export`]: JSON and MessagePack checked
//!   against a signature, in one canonical MessagePack form.
//! - [`Component::decode`]: a component's exports and imports read from its
//!   bytes with wasmparser and wit-parser, validated but never compiled.
//!
//! - [`blob_path`] and [`parse_blob_hash`]: blob names and the one layout of
//!   a blob directory.
//! - [`FailureKind`] (from `ferry-policy`): every way a task can fail, one
//!   vocabulary for host, endpoint, service and client.
//!
//! The service checks submissions with it; endpoints (through `ferry-host`)
//! convert its values to and from a runtime's.

mod blobs;
mod codec;
mod component;
mod error;
mod export;
mod types;
mod value;

pub use blobs::{blob_path, parse_blob_hash};
pub use component::{Component, FunctionId, check_component_bytes};
pub use error::Error;
pub use export::{Export, find as find_export};
pub use ferry_policy::{FailureKind, UnknownKind};
pub use types::{Named, Record, Signature, Variant, WitType};
pub use value::Value;
