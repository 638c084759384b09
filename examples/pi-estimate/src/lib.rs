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
    let mut hit = || {
        let x = rng.next_unit();
        let y = rng.next_unit();
        u64::from(x * x + y * y <= 1.0)
    };
    // Two points per iteration halves the loop overhead (counter, and the
    // epoch check a Wasm host inserts); the sequence of points is unchanged.
    let mut inside = 0u64;
    for _ in 0..num_points / 2 {
        inside += hit() + hit();
    }
    if num_points % 2 == 1 {
        inside += hit();
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

    /// A uniform f64 in [0, 1) from the top 52 bits: they become the mantissa
    /// of a number in [1, 2), minus one. No integer-to-float conversion, which
    /// Wasm only has in its unsigned form, a branchy sequence on x86.
    fn next_unit(&mut self) -> f64 {
        f64::from_bits(0x3ff0_0000_0000_0000 | (self.next_u64() >> 12)) - 1.0
    }
}
