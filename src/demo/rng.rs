//! SplitMix64 and the few distributions the simulation draws from; stable forever, so the
//! demo does not change with a crate update.

/// SplitMix64: tiny, fast, and stable forever.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    /// Approximately normal noise: mean 1, given spread.
    pub(super) fn noise(&mut self, spread: f64) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        (1.0 + spread * sum * 1.7).max(0.05)
    }

    /// Exponential with the given mean.
    pub(super) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Rounds `x` to an integer randomly so the expectation is exact.
    pub(super) fn round(&mut self, x: f64) -> u64 {
        let floor = x.floor();
        floor as u64 + u64::from(self.chance(x - floor))
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.unit() * total;
        for (item, weight) in items {
            if roll < *weight {
                return *item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }
}
