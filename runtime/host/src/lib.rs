//! `ferry-host` runs ferry functions: WebAssembly components identified by the
//! blake3 hash of their bytes, called with typed arguments under per-call
//! limits, with host capabilities such as `ferry:host/log`.
//!
//! The [`Host`] owns one wasmtime `Engine` (shared) and hands every call its
//! own `Store` (the unit of isolation). Compiled components are cached in
//! memory and on disk, so a component is compiled once per engine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_host::Error> {
//! use ferry_host::{CallOptions, Host, HostConfig, Limits};
//!
//! let host = Host::new(HostConfig::default())?;
//! let pi = host.load_file("pi.wasm")?;
//! let export = pi.export("pi")?;
//! let args = export.args_from_json_strs(&["1000000", "42"])?;
//! let out = host.call(&pi, export, &args, &Limits::default(), &CallOptions::default()).await?;
//! println!("{}", export.result_to_json(out.result.as_ref())?);
//! # Ok(()) }
//! ```

mod call;
pub mod capabilities;
mod error;
mod function;
mod host;
mod limits;
mod process;
mod stdio;
mod typed;
mod value;
mod wit;

pub use call::{Failed, Outcome, Output};
pub use capabilities::blobs::{BlobSource, DirSource, NewBlob, blob_path, parse_blob_hash};
#[cfg(feature = "camera")]
pub use capabilities::camera::{self, Camera, OpenAt};
pub use capabilities::env::EnvVar;
pub use capabilities::files::{Files, Mount};
pub use capabilities::gpu::{Gpu, GpuChoice, GpuInfo};
pub use capabilities::log::{Level, LogEvent, LogSink};
pub use capabilities::{CallOptions, Lent};
pub use error::Error;
pub use ferry_policy::{Grants, Offer, Requirement, Resource, Scope};
pub use ferry_wit::{FailureKind, Named, Record, Signature, Value, Variant, WitType};
pub use function::{Export, Function, FunctionId};
pub use host::{Host, HostConfig, HostStats};
pub use limits::{Limits, parse_bytes, parse_duration};
pub use process::prepare_environment;
pub use stdio::Captured;
