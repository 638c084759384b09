//! Host capabilities: what a function may have of its endpoint beyond
//! plain computation.
//!
//! Each capability is one [`Capability`] (a "factor", as in Spin), in its
//! own module, with one life cycle:
//! - **link**: its `ferry:host` interface goes into the host's one linker;
//! - **advertise**: from the [`Grant`](Capability::Grant) an endpoint
//!   configured, the [`Offer`]s its hello carries, so that the service can
//!   check requirements before a task is sent;
//! - **check**: requirements are `ferry_policy::Requirement`s, checked by
//!   `ferry_policy::Grants` against those offers, on the service and again
//!   on the endpoint;
//! - **prepare**: per task, its state in the task's store, made from the
//!   grant for that task's function.
//!
//! The list at the foot of this file (a field name, the capability, and
//! the type of its grant) generates the task's store data and
//! [`CallOptions`] with one field per capability, the linker calls, the
//! advertisement and the per-task preparation. Adding a capability is
//! adding a module and a line to that list.

use std::time::Instant;

use ferry_policy::{Offer, Scope};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::limits::MemoryLimiter;
use crate::{Error, Host, Limits};

pub mod blobs;
#[cfg(feature = "camera")]
pub mod camera;
pub mod env;
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

/// One host capability, and its life cycle: link, advertise, prepare.
pub(crate) trait Capability {
    /// The `ferry:host` interface it links (`"ferry:host/log"`); `None` for
    /// one made of WASI configuration alone (files, env).
    const INTERFACE: Option<&'static str>;

    /// What an embedder lends calls through this capability, with the
    /// functions each part is lent to. Endpoint-wide: the same grant serves
    /// every call, and [`prepare`](Capability::prepare) picks what the
    /// call's function may have.
    type Grant: Clone + Default + Send + Sync + 'static;

    /// Per-task state, kept in the task's store and dropped with it.
    type State: Send + 'static;

    /// Adds the interface to the host's linker. A capability made of WASI
    /// alone has nothing to add: WASI is linked whole.
    fn add_to_linker(
        _linker: &mut Linker<TaskState>,
        _get: fn(&mut TaskState) -> &mut Self::State,
    ) -> wasmtime::Result<()> {
        Ok(())
    }

    /// What the endpoint has, to advertise in its hello.
    fn advertise(grant: &Self::Grant, host: &Host) -> Vec<Offer>;

    /// The state for one task, from what `grant` lends its function.
    fn prepare(grant: &Self::Grant, task: &mut Prepare<'_>) -> Result<Self::State, Error>;

    /// Whether the task's time ran out inside this capability's host calls.
    fn timed_out(_state: &Self::State) -> bool {
        false
    }
}

/// What a capability sees of the task it prepares for.
pub(crate) struct Prepare<'a> {
    pub(crate) host: &'a Host,
    /// The function's id (blake3 hex), which grants are scoped by.
    pub(crate) function: &'a str,
    pub(crate) limits: &'a Limits,
    #[cfg_attr(not(any(feature = "gpu", feature = "camera")), allow(dead_code))]
    pub(crate) deadline: Instant,
    /// WASI's configuration, for capabilities made of it.
    pub(crate) wasi: &'a mut WasiCtxBuilder,
    /// Dropped after the store: what must outlive every handle the guest
    /// holds (its scratch directory).
    pub(crate) keep: &'a mut Vec<Box<dyn Send>>,
}

/// Something an endpoint lends, and the functions it lends it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lent<T> {
    pub item: T,
    pub functions: Scope,
}

impl<T> Lent<T> {
    /// Lent to every function.
    pub fn to_all(item: T) -> Lent<T> {
        Lent {
            item,
            functions: Scope::all(),
        }
    }

    /// Lent to the functions with these ids (`*` for every function).
    pub fn to(item: T, functions: Scope) -> Lent<T> {
        Lent { item, functions }
    }
}

/// Splits `lent` into what `function` may have and what it may not.
pub(crate) fn partition<'a, T>(lent: &'a [Lent<T>], function: &str) -> (Vec<&'a T>, Vec<&'a T>) {
    let (granted, withheld): (Vec<&Lent<T>>, Vec<&Lent<T>>) =
        lent.iter().partition(|l| l.functions.covers(function));
    (
        granted.into_iter().map(|l| &l.item).collect(),
        withheld.into_iter().map(|l| &l.item).collect(),
    )
}

macro_rules! capabilities {
    ($($(#[$cfg:meta])* $field:ident: $factor:ty => $grant:ty,)*) => {
        /// Per-call store data, the unit of isolation: WASI, the memory
        /// limiter, and one state per capability.
        pub(crate) struct TaskState {
            pub(crate) wasi: WasiCtx,
            pub(crate) table: ResourceTable,
            pub(crate) limiter: MemoryLimiter,
            pub(crate) timed_out: bool,
            $($(#[$cfg])* pub(crate) $field: <$factor as Capability>::State,)*
        }

        /// What a call is lent, one grant per capability. An endpoint makes
        /// one at start and uses it for every call; each capability gives a
        /// call only what its grant lends the call's function.
        #[derive(Clone, Default)]
        pub struct CallOptions {
            $($(#[$cfg])* pub $field: $grant,)*
        }

        /// The `ferry:host` interfaces this build links.
        pub(crate) fn interfaces() -> Vec<&'static str> {
            let mut all = Vec::new();
            $($(#[$cfg])* all.extend(<$factor as Capability>::INTERFACE);)*
            all
        }

        pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> Result<(), Error> {
            $(
                $(#[$cfg])*
                <$factor as Capability>::add_to_linker(linker, |s: &mut TaskState| &mut s.$field)
                    .map_err(|e| Error::Internal(format!(
                        "adding the {} capability to the linker: {e}",
                        stringify!($field)
                    )))?;
            )*
            Ok(())
        }

        pub(crate) fn advertise(options: &CallOptions, host: &Host) -> Vec<Offer> {
            let mut offers = Vec::new();
            $($(#[$cfg])* offers.extend(<$factor as Capability>::advertise(&options.$field, host));)*
            offers
        }

        /// A task's store data, each capability prepared in list order.
        pub(crate) fn prepare(
            options: &CallOptions,
            task: &mut Prepare<'_>,
        ) -> Result<TaskState, Error> {
            $($(#[$cfg])* let $field = <$factor as Capability>::prepare(&options.$field, task)?;)*
            Ok(TaskState {
                wasi: task.wasi.build(),
                table: ResourceTable::new(),
                limiter: MemoryLimiter::new(task.limits.memory),
                timed_out: false,
                $($(#[$cfg])* $field,)*
            })
        }

        /// Whether the task's time ran out, in wasm or in any capability.
        pub(crate) fn timed_out(state: &TaskState) -> bool {
            let mut out = state.timed_out;
            $($(#[$cfg])* { out |= <$factor as Capability>::timed_out(&state.$field); })*
            out
        }
    };
}

capabilities! {
    log: log::Factor => Option<log::LogSink>,
    files: files::Factor => files::Files,
    env: env::Factor => Vec<Lent<env::EnvVar>>,
    blobs: blobs::Factor => Option<std::sync::Arc<dyn blobs::BlobSource>>,
    #[cfg(feature = "camera")]
    camera: camera::Factor => Vec<Lent<std::sync::Arc<camera::Camera>>>,
    #[cfg(feature = "gpu")]
    gpu: gpu::Factor => (),
}
