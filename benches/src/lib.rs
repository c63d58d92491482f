//! QAStore's benchmarks and the cluster load generator.
//!
//! * Key generation and latency summaries for the engine benches in `benches/`
//!   (`cargo bench -p qastore-benches`); each prints its figures beside a peer measured in the
//!   same run.
//! * [`versus`]: one QAStore and one etcd cluster driven by the same load, side by side; the
//!   load engine, the workload and the QAStore processes come from `qastore_testkit`.
//! * `fanout` (with the `etcd` and `nats` features): subscriptions (QAStore's Feed service,
//!   etcd watches, NATS JetStream consumers) side by side under the same fixed write rate.

#[cfg(all(feature = "etcd", feature = "nats"))]
pub mod fanout;
pub mod report_files;
pub mod versus;

use std::time::Duration;

use hdrhistogram::Histogram;
use xxhash_rust::xxh3::xxh3_64;

/// A 16-byte key for item `i`: 8 hash bytes (so keys arrive in random order) then `i`
/// big-endian (so keys are unique).
pub fn key16(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&xxh3_64(&i.to_le_bytes()).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// A 16-byte key that is never produced by [`key16`] but sorts among its keys.
pub fn absent_key16(i: u64) -> [u8; 16] {
    let mut k = key16(i);
    k[15] ^= 0x5a;
    k[8] = 0xff;
    k
}

/// A value of `len` bytes whose content depends on `i`.
pub fn value(i: u64, len: usize) -> Vec<u8> {
    let seed = i.to_le_bytes();
    (0..len).map(|j| seed[j % 8] ^ (j as u8)).collect()
}

/// Latencies of one benchmark row, summarized as percentiles.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty recorder (1 ns .. 100 s, 3 significant digits).
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, 100_000_000_000, 3)
            .unwrap_or_else(|_| unreachable!("constant bounds are valid"));
        Latencies { hist }
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let _ = self.hist.record(d.as_nanos().max(1) as u64);
    }

    /// Adds another recorder's samples.
    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.hist.add(&other.hist);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at percentile `p` (0..=100).
    pub fn percentile(&self, p: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_percentile(p))
    }

    /// "p50 … p99 … p999 …" in microseconds.
    pub fn summary(&self) -> String {
        format!(
            "p50 {:>9.2} us  p99 {:>9.2} us  p999 {:>9.2} us  (n={})",
            self.percentile(50.0).as_nanos() as f64 / 1e3,
            self.percentile(99.0).as_nanos() as f64 / 1e3,
            self.percentile(99.9).as_nanos() as f64 / 1e3,
            self.count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_absent_keys_never_collide() {
        let keys: std::collections::HashSet<_> = (0..10_000).map(key16).collect();
        assert_eq!(keys.len(), 10_000);
        assert!((0..10_000).all(|i| !keys.contains(&absent_key16(i))));
    }

    #[test]
    fn percentiles_come_from_the_samples() {
        let mut l = Latencies::new();
        for us in 1..=100 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.count(), 100);
        let p50 = l.percentile(50.0).as_micros();
        assert!((49..=51).contains(&p50), "{p50}");
    }
}
