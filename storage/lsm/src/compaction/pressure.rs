//! Write back-pressure: how hard the engine pushes back on writers.
//!
//! Two signals, each with a slow-down and a stop threshold: level 0's runs (the tables a read
//! may have to check for one key, [`Version::level0_runs`]) and an estimate of the bytes compaction still has to rewrite.
//! Between the thresholds each write is delayed, the delay growing linearly from nothing to
//! `max_write_delay`; at a stop threshold writes wait until compaction catches up. A full
//! queue of frozen memtables also stops writes.

use std::time::Duration;

use super::picker::LevelShape;
use crate::version::{Version, NUM_LEVELS};

/// What a write has to do before it may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePressure {
    /// Nothing: write at once.
    Normal,
    /// Wait this long first.
    Slowdown(Duration),
    /// Wait until flushes or compactions make room.
    Stop,
}

/// Thresholds for back-pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressureLimits {
    /// Level-0 runs at which writes start slowing down.
    pub l0_slowdown: usize,
    /// Level-0 runs at which writes stop.
    pub l0_stop: usize,
    /// Pending compaction bytes at which writes start slowing down.
    pub pending_slowdown_bytes: u64,
    /// Pending compaction bytes at which writes stop.
    pub pending_stop_bytes: u64,
    /// The delay just below a stop threshold.
    pub max_write_delay: Duration,
}

/// Bytes compaction would have to rewrite to bring every level within its target (level 0
/// counts in full once it reaches its trigger).
pub fn pending_compaction_bytes(version: &Version, shape: &LevelShape) -> u64 {
    let mut pending = 0;
    if version.level0_runs() >= shape.l0_trigger {
        pending += version.levels[0].iter().map(|f| f.desc.size).sum::<u64>();
    }
    for level in 1..NUM_LEVELS - 1 {
        let bytes: u64 = version.levels[level].iter().map(|f| f.desc.size).sum();
        pending += bytes.saturating_sub(shape.target(level));
    }
    pending
}

fn fraction(value: f64, slow: f64, stop: f64) -> f64 {
    if stop <= slow {
        return 1.0;
    }
    ((value - slow) / (stop - slow)).clamp(0.0, 1.0)
}

/// The pressure a write faces given the current version and frozen-memtable queue.
pub fn pressure(
    version: &Version,
    shape: &LevelShape,
    limits: &PressureLimits,
    queue_full: bool,
) -> WritePressure {
    let l0 = version.level0_runs();
    let pending = pending_compaction_bytes(version, shape);
    if queue_full || l0 >= limits.l0_stop || pending >= limits.pending_stop_bytes {
        return WritePressure::Stop;
    }
    if l0 < limits.l0_slowdown && pending < limits.pending_slowdown_bytes {
        return WritePressure::Normal;
    }
    let f = fraction(l0 as f64, limits.l0_slowdown as f64, limits.l0_stop as f64).max(fraction(
        pending as f64,
        limits.pending_slowdown_bytes as f64,
        limits.pending_stop_bytes as f64,
    ));
    // Even at the threshold itself, slow down a little.
    let delay = limits.max_write_delay.mul_f64(f.max(0.05));
    WritePressure::Slowdown(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_ramps_between_the_thresholds() {
        assert_eq!(fraction(8.0, 8.0, 12.0), 0.0);
        assert_eq!(fraction(10.0, 8.0, 12.0), 0.5);
        assert_eq!(fraction(13.0, 8.0, 12.0), 1.0);
        let shape = LevelShape {
            l0_trigger: 4,
            level1_bytes: 100,
            multiplier: 10,
            target_file_bytes: 100,
            partition_prefix: 0,
        };
        assert_eq!(shape.target(1), 100);
        assert_eq!(shape.target(3), 10_000);
    }
}
