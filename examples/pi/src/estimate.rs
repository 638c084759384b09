/// Monte-Carlo pi: the fraction of `num_points` uniform points in the unit
/// square that land inside the quarter circle, times four.
///
/// The generator is xoshiro256++ seeded through splitmix64: fast, and the same
/// on every platform, so a seed pins the answer.
pub fn pi(num_points: u64, seed: u64) -> f64 {
    if num_points == 0 {
        return 0.0;
    }
    let mut rng = Xoshiro256pp::new(seed);
    let mut inside = 0u64;
    for _ in 0..num_points {
        let x = rng.next_unit();
        let y = rng.next_unit();
        inside += u64::from(x * x + y * y <= 1.0);
    }
    4.0 * inside as f64 / num_points as f64
}

struct Xoshiro256pp([u64; 4]);

impl Xoshiro256pp {
    fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform f64 in [0, 1) from the top 53 bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
