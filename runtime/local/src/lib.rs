//! `ferry-local`: ferry on one machine. A service and a local endpoint in
//! one process ([`Fabric`]), and the checkout's example components, found
//! or built ([`component`]), for `ferry up`, the demos and the benchmarks.

mod fabric;
mod guests;
mod kmeans;

pub use fabric::{Fabric, admin_token, connect_when_ready};
pub use guests::component;
pub use kmeans::{Clustering, KmeansArgs};
