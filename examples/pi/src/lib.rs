//! The seed experiment's Monte-Carlo pi.
//!
//! The estimator is the `pi-estimate` crate, so that the benchmark builds
//! the very same code natively and compares Wasm against native.

use pi_estimate as estimate;

wit_bindgen::generate!({ path: "wit", world: "pi" });

struct Pi;

impl Guest for Pi {
    fn pi(num_points: u64, seed: u64) -> f64 {
        estimate::pi(num_points, seed)
    }
}

export!(Pi);
