//! A small seeded PRNG (SplitMix64) for tags, branches and Call-IDs.
//!
//! Cores must be deterministic under test, so they never read OS entropy:
//! the driver seeds them once from the OS, tests from a fixed seed.
//! Identifiers need uniqueness, not secrecy; digest nonces (a later issue)
//! will take their entropy from the driver.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A token of `len` lowercase alphanumerics (a SIP `token`).
    pub fn token(&mut self, len: usize) -> String {
        const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut s = String::with_capacity(len);
        let mut bits = self.next_u64();
        for i in 0..len {
            if i % 10 == 9 {
                bits = self.next_u64();
            }
            s.push(ABC[(bits % 36) as usize] as char);
            bits /= 36;
        }
        s
    }
}
