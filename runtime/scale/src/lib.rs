//! `ferry-scale`: elastic endpoints on existing resource managers.
//!
//! An endpoint with a `[provider]` is a manager: it asks a [`Provider`]
//! (local processes, Slurm, Kubernetes) for blocks of worker agents, and
//! its [`Strategy`] grows and shrinks them with the queue, as Parsl's
//! blocks do. Scale-in drains workers; a busy one is never killed.

#[cfg(feature = "kubernetes")]
mod kubernetes;
mod local;
mod manager;
mod provider;
mod settings;
mod slurm;
mod strategy;

#[cfg(feature = "kubernetes")]
pub use kubernetes::{
    KubernetesConfig, KubernetesProvider, job_for as kubernetes_job_for,
    job_name as kubernetes_job_name, state_of as kubernetes_state_of,
};
pub use local::LocalProvider;
pub use manager::{Decision, Fabric, Manager, Workers};
pub use provider::{BlockSpec, JobEnd, JobId, JobState, Provider};
pub use settings::{InvalidSetting, Settings};
pub use slurm::{SlurmConfig, SlurmProvider, available as slurm_available};
pub use strategy::{Action, Block, Event, Load, Phase, Strategy, WorkerLoad};
