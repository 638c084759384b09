//! Host capabilities: the `ferry:host` interfaces a function may import.
//!
//! Every capability has the same shape, in its own module: the bindings of its
//! WIT interface, its per-task host state, an `add_to_linker`, and its tests.
//! Adding a capability means copying the shape of `log`.

pub mod blobs;
pub mod camera;
pub mod files;
pub mod gpu;
pub mod log;

/// Bindings for the whole `ferry:host` package, generated from the guest SDK's
/// WIT so that host and guest can never disagree on the contract.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit",
        world: "ferry:host/guest",
        imports: {
            "ferry:host/gpu": async | trappable,
            "ferry:host/blobs": async | trappable,
            "ferry:host/camera": async | trappable,
        },
        with: {
            "ferry:host/gpu.buffer": super::gpu::GpuBuffer,
            "ferry:host/gpu.kernel": super::gpu::GpuKernel,
            "ferry:host/blobs.reader": super::blobs::BlobReader,
            "ferry:host/blobs.writer": super::blobs::BlobWriter,
        },
        trappable_error_type: {
            "ferry:host/gpu.error" => super::gpu::Failure,
        },
    });
}

/// Import-name prefixes this host can satisfy; anything else is refused at load
/// with an error that names the import.
pub(crate) const GRANTED_PREFIXES: &[&str] = &[
    "wasi:",
    "ferry:host/log@",
    "ferry:host/gpu@",
    "ferry:host/blobs@",
    "ferry:host/camera@",
];
