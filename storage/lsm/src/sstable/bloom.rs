//! The table's bloom filter over user keys.
//!
//! The hash is fixed by the format: XXH3-64 (seed 0) of the user key, split into two 32-bit
//! halves `h1`, `h2`; probe `i` sets bit `(h1 + i * h2) mod m`. About ten bits per key and seven
//! probes give a false-positive rate near 1%.
//!
//! Stored form: `bit array | probes u8`; the block checksum is added by the table builder.

use xxhash_rust::xxh3::xxh3_64;

/// Collects key hashes while a table is built.
#[derive(Debug, Default)]
pub struct BloomBuilder {
    hashes: Vec<u64>,
}

impl BloomBuilder {
    /// Adds a user key (call once per distinct key).
    pub fn add(&mut self, user_key: &[u8]) {
        self.hashes.push(xxh3_64(user_key));
    }

    /// Builds the filter with about `bits_per_key` bits per key.
    pub fn build(&self, bits_per_key: usize) -> Vec<u8> {
        let bits_per_key = bits_per_key.max(1);
        let probes = ((bits_per_key as f64) * std::f64::consts::LN_2).round() as usize;
        let probes = probes.clamp(1, 30);
        let bits = (self.hashes.len() * bits_per_key).max(64);
        let bytes = bits.div_ceil(8);
        let m = (bytes * 8) as u64;
        let mut out = vec![0u8; bytes + 1];
        for &h in &self.hashes {
            for bit in probe_bits(h, probes, m) {
                out[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        out[bytes] = probes as u8;
        out
    }
}

fn probe_bits(h: u64, probes: usize, m: u64) -> impl Iterator<Item = u64> {
    let h1 = h & 0xffff_ffff;
    let h2 = h >> 32;
    (0..probes as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
}

/// A filter read back from a table.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    bits: bytes::Bytes,
    probes: usize,
}

impl BloomFilter {
    /// Parses a stored filter, or `None` if it is malformed.
    pub fn parse(stored: bytes::Bytes) -> Option<BloomFilter> {
        let (&probes, _) = stored.split_last()?;
        if probes == 0 || probes > 30 || stored.len() < 2 {
            return None;
        }
        let bits = stored.slice(..stored.len() - 1);
        Some(BloomFilter {
            bits,
            probes: probes as usize,
        })
    }

    /// False if `user_key` is certainly absent; true if it may be present.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        let m = (self.bits.len() * 8) as u64;
        probe_bits(xxh3_64(user_key), self.probes, m)
            .all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let mut b = BloomBuilder::default();
        for i in 0..10_000u32 {
            b.add(format!("key{i}").as_bytes());
        }
        let f = BloomFilter::parse(b.build(10).into()).unwrap();
        for i in 0..10_000u32 {
            assert!(f.may_contain(format!("key{i}").as_bytes()));
        }
        let fp = (0..10_000u32)
            .filter(|i| f.may_contain(format!("other{i}").as_bytes()))
            .count();
        assert!(fp < 250, "{fp} false positives in 10000");
    }

    #[test]
    fn malformed_filters_are_rejected() {
        assert!(BloomFilter::parse(bytes::Bytes::from_static(&[0])).is_none());
        assert!(BloomFilter::parse(bytes::Bytes::from_static(&[0xff, 0])).is_none());
    }
}
