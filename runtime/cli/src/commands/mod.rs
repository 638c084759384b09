//! The commands that talk to a service, one file per group.

mod auth;
mod blob;
mod endpoint;
mod func;
mod status;
mod task;

pub use auth::{TokenCommand, UserCommand, login, token, user, whoami};
pub use blob::{BlobCommand, blob};
pub use endpoint::{EndpointCommand, endpoint};
pub use func::{CacheCommand, FnCommand, cache, func};
pub use status::status;
pub use task::{ListArgs, SubmitArgs, call, cancel, graph, list, logs, result, submit, write_out};
