//! A time range of an instrument's ticks or trades, read in key order.

use std::ops::Bound;

use bytes::Bytes;

use crate::error::{InvalidArgument, Result};
use qastore_lsm::Engine;

/// `[from, to)` in epoch nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Start (inclusive).
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
}

impl TimeRange {
    /// The range `[from, to)`.
    pub fn new(from: i64, to: i64) -> Self {
        TimeRange { from, to }
    }

    /// Everything.
    pub fn all() -> Self {
        TimeRange {
            from: i64::MIN,
            to: i64::MAX,
        }
    }

    /// Refuses an empty or inverted range.
    pub fn check(&self) -> Result<()> {
        if self.from >= self.to {
            return Err(InvalidArgument::BadTimeRange {
                from: self.from,
                to: self.to,
            }
            .into());
        }
        Ok(())
    }

    /// Whether `t` lies in the range.
    pub fn contains(&self, t: i64) -> bool {
        self.from <= t && t < self.to
    }
}

/// Reads the keys in `[lower, upper)` (or after `resume`, if later), in order.
pub fn scan_keys(
    engine: &Engine,
    lower: Vec<u8>,
    upper: Vec<u8>,
    resume: Option<Vec<u8>>,
) -> impl Iterator<Item = Result<(Bytes, Bytes)>> {
    let (start, start_bound) = match resume {
        Some(r) if r >= lower => (r, true),
        _ => (lower, false),
    };
    let lower_bound = if start_bound {
        Bound::Excluded(&start[..])
    } else {
        Bound::Included(&start[..])
    };
    engine
        .scan(lower_bound, Bound::Excluded(&upper[..]))
        .map(|row| Ok(row?))
}
