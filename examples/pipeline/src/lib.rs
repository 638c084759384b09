//! The seed's Figure 2 as a workflow: generate, (kmeans), summarise.

// The bindings lower the 8-field `summary` as 8 arguments.
#![allow(clippy::too_many_arguments)]

// The generator is kmeans's own, so a pipeline and `ferry demo kmeans` draw
// the same points for the same seed.
use kmeans_lloyd as lloyd;

wit_bindgen::generate!({
    path: "wit",
    world: "pipeline",
});

struct Pipeline;

impl Guest for Pipeline {
    fn generate(n: u32, blobs: u32, spread: f32, seed: u64) -> Vec<f32> {
        lloyd::generate(n as usize, blobs as usize, f64::from(spread), seed)
    }

    fn summarise(c: Clustering) -> Summary {
        let k = (c.centers.len() / 2) as u32;
        let mut sizes = vec![0u32; k as usize];
        for &code in &c.codes {
            if let Some(s) = sizes.get_mut(code as usize) {
                *s += 1;
            }
        }
        Summary {
            points: c.codes.len() as u32,
            k,
            smallest: sizes.iter().copied().min().unwrap_or(0),
            largest: sizes.iter().copied().max().unwrap_or(0),
            sizes,
            centers: c.centers,
            iterations: c.iterations,
            device: c.device,
        }
    }
}

export!(Pipeline);
