//! The seed experiment's Monte-Carlo pi.
//!
//! The estimator lives in `estimate` so that the benchmark can build the very
//! same code natively (`#[path]`-included) and compare Wasm against native.

#[path = "estimate.rs"]
mod estimate;

wit_bindgen::generate!({ path: "wit", world: "pi" });

struct Pi;

impl Guest for Pi {
    fn pi(num_points: u64, seed: u64) -> f64 {
        estimate::pi(num_points, seed)
    }
}

export!(Pi);
