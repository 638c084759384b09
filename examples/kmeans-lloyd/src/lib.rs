//! The k-means core, free of any ferry dependency so that the benchmark and the
//! tests build the very same code natively.

/// Largest k the GPU kernels support (their per-thread accumulators).
pub const MAX_K: u32 = 32;

/// Checks the shape of a clustering request.
pub fn validate(points: &[f32], k: u32) -> Result<usize, String> {
    if !points.len().is_multiple_of(2) {
        return Err(format!(
            "points must be interleaved x, y: got an odd count of {} floats",
            points.len()
        ));
    }
    let n = points.len() / 2;
    if k == 0 {
        return Err("k must be at least 1".into());
    }
    if (k as usize) > n {
        return Err(format!("k = {k} is more than the {n} points"));
    }
    if let Some(i) = points.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "point {} has a coordinate that is not finite",
            i / 2
        ));
    }
    Ok(n)
}

/// splitmix64: small, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.next_f64();
        let v = self.next_f64();
        (-2.0 * u.ln()).sqrt() * (core::f64::consts::TAU * v).cos()
    }
}

/// `n` points drawn from `blobs` normal clusters with standard deviation
/// `spread`, their means uniform in [-10, 10]²; interleaved x, y.
pub fn generate(n: usize, blobs: usize, spread: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let means: Vec<(f64, f64)> = (0..blobs.max(1))
        .map(|_| (rng.next_f64() * 20.0 - 10.0, rng.next_f64() * 20.0 - 10.0))
        .collect();
    let mut points = Vec::with_capacity(n * 2);
    for i in 0..n {
        let (mx, my) = means[i % means.len()];
        points.push((mx + spread * rng.normal()) as f32);
        points.push((my + spread * rng.normal()) as f32);
    }
    points
}

/// Points split into coordinates, so that the hot loops run over plain
/// slices (and vectorize, natively and in Wasm with simd128).
pub struct Soa {
    pub xs: Vec<f32>,
    pub ys: Vec<f32>,
}

impl Soa {
    pub fn new(points: &[f32]) -> Soa {
        Soa {
            xs: points.iter().step_by(2).copied().collect(),
            ys: points.iter().skip(1).step_by(2).copied().collect(),
        }
    }
}

/// k-means++ seeding: the first center uniform, each next one drawn with
/// probability proportional to the squared distance to the nearest chosen.
pub fn initial_centers(p: &Soa, k: usize, seed: u64) -> Vec<f32> {
    let n = p.xs.len();
    let mut rng = Rng::new(seed);
    let first = (rng.next_u64() % n as u64) as usize;
    let mut centers = vec![p.xs[first], p.ys[first]];
    let mut nearest = vec![f32::INFINITY; n];
    loop {
        let (cx, cy) = (centers[centers.len() - 2], centers[centers.len() - 1]);
        for ((near, &x), &y) in nearest.iter_mut().zip(&p.xs).zip(&p.ys) {
            let dx = x - cx;
            let dy = y - cy;
            let d = dx * dx + dy * dy;
            *near = if d < *near { d } else { *near };
        }
        if centers.len() >= 2 * k {
            return centers;
        }
        // Four running sums, so that the adds do not wait on each other.
        let mut partial = [0.0f64; 4];
        let mut quads = nearest.chunks_exact(4);
        for q in &mut quads {
            for (s, &d) in partial.iter_mut().zip(q) {
                *s += f64::from(d);
            }
        }
        let rest: f64 = quads.remainder().iter().map(|&d| f64::from(d)).sum();
        let total = partial.iter().sum::<f64>() + rest;
        let pick = if total > 0.0 {
            let mut target = rng.next_f64() * total;
            let mut chosen = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                target -= f64::from(d);
                if target < 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            (rng.next_u64() % n as u64) as usize
        };
        centers.push(p.xs[pick]);
        centers.push(p.ys[pick]);
    }
}

/// Points assigned together: fixed-size lanes that the compiler turns into
/// SIMD, natively and in Wasm (simd128) alike.
const LANES: usize = 8;

/// Assigns each point its nearest center (the lowest index on a tie);
/// returns how many codes changed.
pub fn assign(p: &Soa, centers: &[f32], codes: &mut [u32]) -> u64 {
    let cs: Vec<(f32, f32)> = centers.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    let mut changed = 0;
    let mut xs = p.xs.chunks_exact(LANES);
    let mut ys = p.ys.chunks_exact(LANES);
    let mut out = codes.chunks_exact_mut(LANES);
    for ((x, y), code) in (&mut xs).zip(&mut ys).zip(&mut out) {
        let x: &[f32; LANES] = x.try_into().expect("exact chunk");
        let y: &[f32; LANES] = y.try_into().expect("exact chunk");
        let mut best = [0u32; LANES];
        let mut best_d = [f32::INFINITY; LANES];
        for (c, &(cx, cy)) in cs.iter().enumerate() {
            for l in 0..LANES {
                let dx = x[l] - cx;
                let dy = y[l] - cy;
                let d = dx * dx + dy * dy;
                // Selects rather than branches: ties and misses cost the same.
                let closer = d < best_d[l];
                best_d[l] = if closer { d } else { best_d[l] };
                best[l] = if closer { c as u32 } else { best[l] };
            }
        }
        for (code, &b) in code.iter_mut().zip(&best) {
            changed += u64::from(*code != b);
            *code = b;
        }
    }
    let tail = xs.remainder().iter().zip(ys.remainder());
    for (code, (&x, &y)) in out.into_remainder().iter_mut().zip(tail) {
        let mut best = 0u32;
        let mut best_d = f32::INFINITY;
        for (c, &(cx, cy)) in cs.iter().enumerate() {
            let dx = x - cx;
            let dy = y - cy;
            let d = dx * dx + dy * dy;
            if d < best_d {
                best_d = d;
                best = c as u32;
            }
        }
        changed += u64::from(*code != best);
        *code = best;
    }
    changed
}

/// Moves each center to the mean of its points (sums in f64); a center with
/// no points stays where it is.
pub fn update(p: &Soa, codes: &[u32], centers: &mut [f32]) {
    let k = centers.len() / 2;
    // One set of sums per lane: consecutive points add into different
    // accumulators, so the adds overlap instead of queueing on one.
    let mut sums = vec![[(0.0f64, 0.0f64, 0u64); LANES]; k];
    let mut xs = p.xs.chunks_exact(LANES);
    let mut ys = p.ys.chunks_exact(LANES);
    let mut cs = codes.chunks_exact(LANES);
    for ((x, y), code) in (&mut xs).zip(&mut ys).zip(&mut cs) {
        for l in 0..LANES {
            let s = &mut sums[code[l] as usize][l];
            s.0 += f64::from(x[l]);
            s.1 += f64::from(y[l]);
            s.2 += 1;
        }
    }
    let tail = xs.remainder().iter().zip(ys.remainder());
    for ((&x, &y), &code) in tail.zip(cs.remainder()) {
        let s = &mut sums[code as usize][0];
        s.0 += f64::from(x);
        s.1 += f64::from(y);
        s.2 += 1;
    }
    for (c, lanes) in sums.iter().enumerate() {
        let (sx, sy, count) = lanes
            .iter()
            .fold((0.0, 0.0, 0), |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2));
        if count > 0 {
            centers[2 * c] = (sx / count as f64) as f32;
            centers[2 * c + 1] = (sy / count as f64) as f32;
        }
    }
}

/// The result of a run: centers, codes and assignment passes.
pub struct Run {
    pub centers: Vec<f32>,
    pub codes: Vec<u32>,
    pub iterations: u32,
}

/// Lloyd's algorithm on the CPU: assign, stop if nothing changed, update.
pub fn cluster(points: &[f32], k: u32, max_iterations: u32, seed: u64) -> Result<Run, String> {
    validate(points, k)?;
    Ok(cluster_soa(&Soa::new(points), k, max_iterations, seed))
}

/// [`cluster`] on points already split (and checked: finite, k ≤ n, k ≥ 1).
pub fn cluster_soa(p: &Soa, k: u32, max_iterations: u32, seed: u64) -> Run {
    let n = p.xs.len();
    let mut centers = initial_centers(p, k as usize, seed);
    let mut codes = vec![u32::MAX; n];
    let mut iterations = 0;
    for _ in 0..max_iterations {
        let changed = assign(p, &centers, &mut codes);
        iterations += 1;
        if changed == 0 {
            break;
        }
        update(p, &codes, &mut centers);
    }
    if iterations == 0 {
        assign(p, &centers, &mut codes);
    }
    Run {
        centers,
        codes,
        iterations,
    }
}
