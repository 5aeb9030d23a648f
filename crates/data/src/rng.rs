//! The deterministic random generator used for splits, shuffling, augmentation and
//! mixing coefficients.
//!
//! Unseen promises bit-identical runs for the same config and seed, across machines and
//! across versions of our dependencies. `rand`'s generators and distributions may change
//! their output between releases, so we own the algorithm: xoshiro256++ (Blackman & Vigna,
//! 2019), seeded through SplitMix64. The full state is four `u64`s, which checkpoints save
//! (see [`Rng::state`]) so that a resumed run draws exactly what the uninterrupted one would.

/// xoshiro256++ generator with a few distributions on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded from `seed` (SplitMix64 expansion, as the xoshiro authors advise).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Self { s }
    }

    /// An independent generator for a named purpose: the same `(seed, stream)` always gives
    /// the same sequence, and different streams do not overlap in practice. Use it so that
    /// e.g. the split does not change when augmentation draws more numbers.
    pub fn stream(seed: u64, stream: &str) -> Self {
        // FNV-1a of the stream name, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        Self::new(seed ^ h.rotate_left(17))
    }

    /// A generator for `(seed, stream, parts...)`, e.g. the augmentation of image `k` of
    /// batch `t`: a pure function of its arguments, with unrelated outputs for different
    /// arguments (each part is folded in through a SplitMix64 seeding and one xoshiro256++
    /// step). Every loader derives its per-epoch, per-batch and per-image generators this
    /// way, so results do not depend on the thread count or on the order work is done.
    pub fn derive(seed: u64, stream: &str, parts: &[u64]) -> Self {
        let mut key = Self::stream(seed, stream).next_u64();
        for &p in parts {
            key = Self::new(key ^ p).next_u64();
        }
        Self::new(key)
    }

    /// Restores a generator from [`Rng::state`].
    pub fn from_state(s: [u64; 4]) -> Self {
        Self { s }
    }

    /// The full internal state (for checkpoints).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
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

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in `0..n` (Lemire's unbiased multiply-shift). `n` must be > 0.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        let n = n as u64;
        loop {
            let x = self.next_u64();
            let m = (x as u128) * (n as u128);
            let low = m as u64;
            if low >= n || low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Fisher-Yates shuffle in place.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }

    /// Standard normal (Box-Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (2000); shapes below 1 use the
    /// `Gamma(a+1) * U^(1/a)` boost.
    pub fn gamma(&mut self, shape: f64) -> f64 {
        assert!(shape > 0.0, "gamma shape must be positive, got {shape}");
        if shape < 1.0 {
            let u = 1.0 - self.next_f64();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.next_f64();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, b) as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)`, the same construction
    /// as NumPy's `np.random.beta` (used by MixOE and mixup references).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        x / (x + y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_reference_vector() {
        // Reference: the C implementation xoshiro256plusplus.c (Vigna) started from state
        // s = {1, 2, 3, 4} gives 41943041, 58720359, 3588806011781223, 3591011842654386.
        let mut r = Rng::from_state([1, 2, 3, 4]);
        assert_eq!(r.next_u64(), 41943041);
        assert_eq!(r.next_u64(), 58720359);
        assert_eq!(r.next_u64(), 3588806011781223);
        assert_eq!(r.next_u64(), 3591011842654386);
    }

    #[test]
    fn splitmix_reference_vector() {
        // SplitMix64 from seed 0 starts 0xE220A8397B1DCDAF (Vigna's splitmix64.c).
        let mut x = 0u64;
        assert_eq!(splitmix64(&mut x), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Rng::stream(7, "split"), |r, _: u64| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Rng::stream(7, "split"), |r, _: u64| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Rng::stream(7, "augment"), |r, _: u64| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Rng::new(1);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            counts[r.below(6)] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn beta_moments_match_theory() {
        // Beta(2, 2): mean 1/2, variance ab/((a+b)^2 (a+b+1)) = 4/(16*5) = 0.05.
        // Beta(1, 1) is uniform: variance 1/12. Beta(0.5, 0.5): variance 0.125.
        for (a, var) in [(2.0, 0.05), (1.0, 1.0 / 12.0), (0.5, 0.125)] {
            let mut r = Rng::new(3);
            let n = 200_000;
            let xs: Vec<f64> = (0..n).map(|_| r.beta(a, a)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!((mean - 0.5).abs() < 0.005, "a={a} mean={mean}");
            assert!((v - var).abs() < 0.003, "a={a} var={v}");
            assert!(xs.iter().all(|&x| (0.0..=1.0).contains(&x)));
        }
    }

    #[test]
    fn state_round_trip_resumes_the_sequence() {
        let mut r = Rng::new(9);
        r.next_u64();
        let saved = r.state();
        let expected: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut back = Rng::from_state(saved);
        let got: Vec<u64> = (0..3).map(|_| back.next_u64()).collect();
        assert_eq!(expected, got);
    }
}
