//! `ferry-policy`: what a task needs of an endpoint, what an endpoint
//! grants, and how a task fails, as plain types with no runtime and no
//! transport in them.
//!
//! - [`Requirement`]: one capability a task needs (`gpu`, `camera:front`,
//!   `mount:/data`, `env:NAME`), typed, with the string form the CLI and the
//!   store use.
//! - [`Offer`] and [`Grants`]: what an endpoint has and which functions
//!   each is lent to. The endpoint enforces its grants with
//!   [`Grants::check`]; the service runs the same check on the endpoint's
//!   advertised offers before it accepts a task, so a refusal reads the same
//!   wherever it happens.
//! - [`FailureKind`]: every way a task can end other than with its result.

mod failure;
mod grants;
mod requirement;

pub use failure::{FailureKind, UnknownKind};
pub use grants::{Grants, Offer, Refusal, Resource, Scope};
pub use requirement::{BadRequirement, Requirement};
