//! `ferry:host/gpu` in a build without the `gpu` feature: no device can be
//! opened, so a component that imports the interface is refused at load,
//! and a configured GPU is refused at start, both saying why.

use std::convert::Infallible;

use super::{GpuChoice, GpuInfo};
use crate::Error;

/// An endpoint's GPU; this build has none to lend.
#[derive(Clone)]
pub struct Gpu {
    never: Infallible,
}

/// A task's buffer; never made in this build.
pub struct GpuBuffer {
    _never: Infallible,
}

/// A task's kernel; never made in this build.
pub struct GpuKernel {
    _never: Infallible,
}

impl Gpu {
    /// `auto` finds nothing and `none` asks for nothing; an adapter by name
    /// is an error, since this build cannot open one.
    pub fn open(choice: &GpuChoice) -> Result<Option<Gpu>, Error> {
        match choice {
            GpuChoice::None | GpuChoice::Auto => Ok(None),
            GpuChoice::Named(name) => Err(Error::Gpu(format!(
                "GPU `{name}` asked for, but this build of ferry has no GPU support (the `gpu` feature)"
            ))),
        }
    }

    pub fn info(&self) -> &GpuInfo {
        match self.never {}
    }

    pub fn live_bytes(&self) -> u64 {
        match self.never {}
    }

    pub fn allocated_bytes(&self) -> Option<u64> {
        match self.never {}
    }

    pub fn kernels_compiled(&self) -> u64 {
        match self.never {}
    }

    pub fn wait_idle(&self) {
        match self.never {}
    }
}
