//! A latency histogram with fixed buckets, recorded with two atomic additions and read at any
//! time: the node serves its counts to benchmarks and renders them on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds: fine below a few milliseconds, where a write's
/// stages live, coarse above. A last bucket holds everything slower.
pub const UPPER_BOUNDS_US: [u64; 39] = [
    5, 10, 20, 30, 40, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 750, 1_000, 1_250,
    1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 50_000,
    75_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Buckets: one per bound, and the last for what is above every bound.
pub const BUCKETS: usize = UPPER_BOUNDS_US.len() + 1;

/// Counts of durations per bucket, and their sum.
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// What a histogram held at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Durations per bucket (not cumulative), [`BUCKETS`] of them.
    pub counts: Vec<u64>,
    /// The sum of every duration recorded, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// Counts `d`.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        // The first bucket whose bound is not below the value; the last if none.
        let bucket = UPPER_BOUNDS_US.partition_point(|&b| b < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::default();
        h.record(Duration::from_micros(5));
        h.record(Duration::from_micros(6));
        h.record(Duration::from_micros(1_000));
        h.record(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count(), 4);
        assert_eq!(s.counts[0], 1, "5 us is in the bucket bounded by 5 us");
        assert_eq!(s.counts[1], 1, "6 us is in the bucket bounded by 10 us");
        let ms = UPPER_BOUNDS_US.iter().position(|&b| b == 1_000).unwrap();
        assert_eq!(s.counts[ms], 1);
        assert_eq!(s.counts[BUCKETS - 1], 1, "a minute is above every bound");
        assert_eq!(s.sum_ns, 60_000_000_000 + 1_011_000);
    }
}
