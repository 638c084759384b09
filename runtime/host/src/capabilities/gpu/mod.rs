//! `ferry:host/gpu`: GPU compute through wgpu, shaped as a subset of WebGPU.
//!
//! One device per endpoint ([`Gpu`]), opened at start and shared by every
//! task; kernels are compiled once per device and cached by the hash of their
//! source. Each task keeps its buffers and kernels in its own table
//! ([`GpuState`]) under its caps, and they are freed when the task's store is
//! dropped, however the task ended.

use std::str::FromStr;

use wasmtime::component::ResourceTableError;

pub(crate) use super::bindings::ferry::host::gpu as wit;
use crate::Error;

#[cfg(not(feature = "gpu"))]
mod absent;
#[cfg(feature = "gpu")]
mod device;
#[cfg(feature = "gpu")]
mod task;

#[cfg(not(feature = "gpu"))]
pub use absent::{Gpu, GpuBuffer, GpuKernel};
#[cfg(feature = "gpu")]
pub use device::{Gpu, GpuBuffer, GpuKernel};
#[cfg(feature = "gpu")]
pub(crate) use task::Factor;

/// Which adapter an endpoint lends to its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GpuChoice {
    /// No GPU: `info` returns none and GPU calls fail with a clear error.
    #[default]
    None,
    /// The best adapter found: a discrete GPU over an integrated one over a
    /// software one (such as Mesa's lavapipe); none if there is no adapter.
    Auto,
    /// The first adapter whose name contains this text (case-insensitive);
    /// failing to find one is an error at start.
    Named(String),
}

impl FromStr for GpuChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "" => Err(Error::Gpu(
                "empty GPU choice: use `auto`, `none` or part of an adapter's name".into(),
            )),
            "auto" => Ok(GpuChoice::Auto),
            "none" => Ok(GpuChoice::None),
            name => Ok(GpuChoice::Named(name.to_owned())),
        }
    }
}

/// The adapter behind an endpoint's GPU, as reported to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub name: String,
    /// `vulkan`, `metal` or `dx12`.
    pub backend: String,
    /// `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        f.write_str(")")
    }
}

/// A host call's failure: an error the guest receives, or a trap.
pub enum Failure {
    Gpu(wit::Error),
    Trap(wasmtime::Error),
}

impl From<wit::Error> for Failure {
    fn from(e: wit::Error) -> Self {
        Failure::Gpu(e)
    }
}

impl From<ResourceTableError> for Failure {
    fn from(e: ResourceTableError) -> Self {
        Failure::Trap(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_choice() {
        assert_eq!("auto".parse::<GpuChoice>().unwrap(), GpuChoice::Auto);
        assert_eq!("none".parse::<GpuChoice>().unwrap(), GpuChoice::None);
        assert_eq!(
            "llvmpipe".parse::<GpuChoice>().unwrap(),
            GpuChoice::Named("llvmpipe".into())
        );
        assert!(" ".parse::<GpuChoice>().is_err());
    }
}
