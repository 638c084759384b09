//! The k-means core, free of any ferry dependency so that the benchmark and the
//! tests build the very same code natively (`#[path]`-included).

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

#[inline]
fn distance(points: &[f32], i: usize, centers: &[f32], c: usize) -> f32 {
    let dx = points[2 * i] - centers[2 * c];
    let dy = points[2 * i + 1] - centers[2 * c + 1];
    dx * dx + dy * dy
}

/// k-means++ seeding: the first center uniform, each next one drawn with
/// probability proportional to the squared distance to the nearest chosen.
pub fn initial_centers(points: &[f32], k: usize, seed: u64) -> Vec<f32> {
    let n = points.len() / 2;
    let mut rng = Rng::new(seed);
    let first = (rng.next_u64() % n as u64) as usize;
    let mut centers = vec![points[2 * first], points[2 * first + 1]];
    let mut nearest: Vec<f32> = (0..n).map(|i| distance(points, i, &centers, 0)).collect();
    while centers.len() < 2 * k {
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
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
        centers.push(points[2 * pick]);
        centers.push(points[2 * pick + 1]);
        let c = centers.len() / 2 - 1;
        for (i, near) in nearest.iter_mut().enumerate() {
            let d = distance(points, i, &centers, c);
            if d < *near {
                *near = d;
            }
        }
    }
    centers
}

/// Assigns each point its nearest center (the lowest index on a tie);
/// returns how many codes changed.
pub fn assign(points: &[f32], centers: &[f32], codes: &mut [u32]) -> u64 {
    let k = centers.len() / 2;
    let mut changed = 0;
    for (i, code) in codes.iter_mut().enumerate() {
        let mut best = 0;
        let mut best_d = f32::INFINITY;
        for c in 0..k {
            let d = distance(points, i, centers, c);
            if d < best_d {
                best_d = d;
                best = c as u32;
            }
        }
        if *code != best {
            *code = best;
            changed += 1;
        }
    }
    changed
}

/// Moves each center to the mean of its points (sums in f64); a center with
/// no points stays where it is.
pub fn update(points: &[f32], codes: &[u32], centers: &mut [f32]) {
    let k = centers.len() / 2;
    let mut sums = vec![(0.0f64, 0.0f64, 0u64); k];
    for (i, &code) in codes.iter().enumerate() {
        let s = &mut sums[code as usize];
        s.0 += f64::from(points[2 * i]);
        s.1 += f64::from(points[2 * i + 1]);
        s.2 += 1;
    }
    for (c, (sx, sy, count)) in sums.into_iter().enumerate() {
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
    let n = validate(points, k)?;
    let mut centers = initial_centers(points, k as usize, seed);
    let mut codes = vec![u32::MAX; n];
    let mut iterations = 0;
    for _ in 0..max_iterations {
        let changed = assign(points, &centers, &mut codes);
        iterations += 1;
        if changed == 0 {
            break;
        }
        update(points, &codes, &mut centers);
    }
    if iterations == 0 {
        assign(points, &centers, &mut codes);
    }
    Ok(Run {
        centers,
        codes,
        iterations,
    })
}
