//! One seeded pseudo-random generator for every test and bench that wants
//! many cases without a crate: xorshift64* (Vigna), deterministic, so a
//! failure replays with the same seed and a benchmark measures the same
//! data every run. Not for anything that needs real randomness.

/// xorshift64*: 64 bits of state, never zero.
pub struct Random(u64);

impl Random {
    /// A generator for `seed` (any value: it is mixed, and kept non-zero).
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}
