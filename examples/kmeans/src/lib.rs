//! The seed's k-means, on the CPU or on the endpoint's GPU.
//!
//! The CPU path and the seeding are the `kmeans-lloyd` crate (shared with
//! the native benchmark); the GPU path runs `kmeans.wgsl` through
//! `ferry:host/gpu`.

use kmeans_lloyd as lloyd;

use ferry_guest::blobs::Writer;
use ferry_guest::gpu::{self, Buffer, Kernel};
use std::time::Instant;

wit_bindgen::generate!({
    path: ["../../guest-sdk/wit", "wit"],
    world: "ferry-examples:kmeans/kmeans",
    with: { "ferry:host/blobs@0.1.0": ferry_guest::bindings::ferry::host::blobs },
});

struct Kmeans;

impl Guest for Kmeans {
    fn cluster_blob(
        points: BlobRef,
        k: u32,
        max_iterations: u32,
        use_gpu: bool,
        seed: u64,
    ) -> Result<ClusteringBlob, String> {
        let started = Instant::now();
        let soa = read_points(&points)?;
        let n = soa.xs.len();
        if k == 0 || k as usize > n {
            return Err(format!("k = {k} must be between 1 and the {n} points"));
        }
        let (run, device) = if use_gpu {
            // The GPU path takes the points interleaved, as they came.
            let interleaved: Vec<f32> = soa
                .xs
                .iter()
                .zip(&soa.ys)
                .flat_map(|(x, y)| [*x, *y])
                .collect();
            drop(soa);
            let c = Self::cluster(interleaved, k, max_iterations, true, seed)?;
            let run = lloyd::Run {
                centers: c.centers,
                codes: c.codes,
                iterations: c.iterations,
            };
            (run, c.device)
        } else {
            (
                lloyd::cluster_soa(&soa, k, max_iterations, seed),
                "cpu".to_owned(),
            )
        };
        let writer = Writer::new()?;
        for piece in run.codes.chunks(1 << 20) {
            let bytes: Vec<u8> = piece.iter().flat_map(|c| c.to_le_bytes()).collect();
            writer.write(&bytes)?;
        }
        Ok(ClusteringBlob {
            centers: run.centers,
            codes: writer.finish()?,
            iterations: run.iterations,
            seconds: started.elapsed().as_secs_f64(),
            device,
        })
    }

    fn cluster(
        points: Vec<f32>,
        k: u32,
        max_iterations: u32,
        use_gpu: bool,
        seed: u64,
    ) -> Result<Clustering, String> {
        let started = Instant::now();
        let (run, device) = if use_gpu {
            let adapter = gpu::info()
                .map(|a| a.name)
                .unwrap_or_else(|| "no adapter".into());
            (
                cluster_gpu(&points, k, max_iterations, seed).map_err(|e| e.to_string())?,
                adapter,
            )
        } else {
            (
                lloyd::cluster(&points, k, max_iterations, seed)?,
                "cpu".to_owned(),
            )
        };
        Ok(Clustering {
            centers: run.centers,
            codes: run.codes,
            iterations: run.iterations,
            seconds: started.elapsed().as_secs_f64(),
            device,
        })
    }
}

/// Reads a points blob in pieces straight into coordinates, checking each.
fn read_points(points: &BlobRef) -> Result<lloyd::Soa, String> {
    if !points.size.is_multiple_of(8) {
        return Err(format!(
            "a points blob holds f32 pairs (8 bytes each); this one has {} bytes",
            points.size
        ));
    }
    let n = (points.size / 8) as usize;
    let mut soa = lloyd::Soa {
        xs: Vec::with_capacity(n),
        ys: Vec::with_capacity(n),
    };
    let reader = ferry_guest::blobs::open(points)?;
    while reader.remaining() > 0 {
        // 8 MiB pieces: a whole number of points.
        let piece = reader.read(8 << 20)?;
        if piece.is_empty() || piece.len() % 8 != 0 {
            return Err("the points blob ended early".into());
        }
        for p in piece.chunks_exact(8) {
            let x = f32::from_le_bytes([p[0], p[1], p[2], p[3]]);
            let y = f32::from_le_bytes([p[4], p[5], p[6], p[7]]);
            if !(x.is_finite() && y.is_finite()) {
                return Err(format!(
                    "point {} has a coordinate that is not finite",
                    soa.xs.len()
                ));
            }
            soa.xs.push(x);
            soa.ys.push(y);
        }
    }
    Ok(soa)
}

/// Why the GPU path stopped.
enum Failure {
    Input(String),
    Gpu(gpu::Error),
}

impl From<gpu::Error> for Failure {
    fn from(e: gpu::Error) -> Self {
        Failure::Gpu(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Input(m) => f.write_str(m),
            Failure::Gpu(e) => e.fmt(f),
        }
    }
}

const WGSL: &str = include_str!("kmeans.wgsl");
const WORKGROUP: u32 = 256;
/// Points each GPU thread takes, so that there are few partial sums to add.
const POINTS_PER_THREAD: u32 = 8;

fn cluster_gpu(
    points: &[f32],
    k: u32,
    max_iterations: u32,
    seed: u64,
) -> Result<lloyd::Run, Failure> {
    let n = lloyd::validate(points, k).map_err(Failure::Input)?;
    if k > lloyd::MAX_K {
        return Err(Failure::Input(format!(
            "the GPU path supports k up to {}, got {k}",
            lloyd::MAX_K
        )));
    }
    let n32 = u32::try_from(n)
        .map_err(|_| Failure::Input(format!("{n} points are too many for the GPU path")))?;
    // Seeding is the same CPU code on both paths, so both start alike.
    let mut centers = lloyd::initial_centers(&lloyd::Soa::new(points), k as usize, seed);
    let groups = n32.div_ceil(WORKGROUP * POINTS_PER_THREAD).clamp(1, 65_535);

    let assign = Kernel::new(WGSL, "assign")?;
    let update = Kernel::new(WGSL, "update")?;
    let points_buf = Buffer::from_slice(points, gpu::storage())?;
    let centers_buf = Buffer::from_slice(&centers, gpu::storage())?;
    let codes_buf = Buffer::from_slice(&vec![u32::MAX; n], gpu::storage())?;
    let partials = Buffer::zeroed::<[f32; 4]>((groups * k) as usize, gpu::storage())?;
    let changed = Buffer::zeroed::<u32>(1, gpu::storage())?;
    let params = Buffer::from_slice(&[n32, k, groups, 0], gpu::uniform())?;
    let bindings = [
        (0, &points_buf),
        (1, &centers_buf),
        (2, &codes_buf),
        (3, &partials),
        (4, &changed),
        (5, &params),
    ];
    let assign_bindings = &bindings;
    let update_bindings = [(1, &centers_buf), (3, &partials), (5, &params)];

    let mut iterations = 0;
    for _ in 0..max_iterations.max(1) {
        changed.write(0, &[0u32])?;
        assign.dispatch(assign_bindings, (groups, 1, 1))?;
        if max_iterations == 0 {
            break;
        }
        iterations += 1;
        let moved = changed.read::<u32>()?[0];
        if moved == 0 {
            break;
        }
        update.dispatch(&update_bindings, (k.div_ceil(32), 1, 1))?;
    }
    centers = centers_buf.read::<f32>()?;
    let codes = codes_buf.read::<u32>()?;
    Ok(lloyd::Run {
        centers,
        codes,
        iterations,
    })
}

export!(Kmeans);
