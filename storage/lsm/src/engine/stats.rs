//! What the engine reports about itself.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::compaction::WritePressure;
use crate::version::NUM_LEVELS;

/// One level's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LevelStats {
    /// Number of tables.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Compaction score: runs over the trigger for level 0, bytes over the target
    /// otherwise (a level is compacted once this reaches 1).
    pub score: f64,
}

/// A point-in-time copy of the engine's state and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    /// The last log index applied (visible to reads).
    pub applied_index: u64,
    /// The last log index whose batches are all in tables (survives a restart).
    pub flushed_index: u64,
    /// Bytes in the active memtable.
    pub memtable_bytes: u64,
    /// Frozen memtables waiting to be flushed.
    pub immutable_memtables: usize,
    /// Bytes in those frozen memtables.
    pub immutable_bytes: u64,
    /// Memtables flushed to tables since open.
    pub flushes: u64,
    /// Bytes of tables written by flushes since open.
    pub flushed_bytes: u64,
    /// Compactions run since open (trivial moves included).
    pub compactions: u64,
    /// Of which moved a table down without rewriting it.
    pub trivial_moves: u64,
    /// Bytes of tables read by compactions since open.
    pub compaction_bytes_read: u64,
    /// Bytes of tables written by compactions since open.
    pub compaction_bytes_written: u64,
    /// Key and value bytes applied since open.
    pub user_bytes: u64,
    /// Table bytes written (flushes and compactions) per byte applied, since open.
    pub write_amplification: f64,
    /// Estimate of the bytes compaction has yet to rewrite.
    pub pending_compaction_bytes: u64,
    /// The pressure a write faces right now.
    pub write_pressure: WritePressure,
    /// Writes delayed because compaction is behind.
    pub slowdowns: u64,
    /// Total time of those delays, in microseconds.
    pub slowdown_micros: u64,
    /// Writes that had to wait for a flush or compaction to make room.
    pub stops: u64,
    /// Total time of those waits, in microseconds.
    pub stop_micros: u64,
    /// Tables per level.
    pub levels: [LevelStats; NUM_LEVELS],
    /// Table lookups the bloom filter answered without reading a block.
    pub bloom_useful: u64,
    /// Table lookups the filter let through for a key the table did not hold.
    pub bloom_false_positive: u64,
}

impl EngineStats {
    /// Total time writes spent slowed down or stopped, in microseconds.
    pub fn stall_micros(&self) -> u64 {
        self.slowdown_micros + self.stop_micros
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub flushes: AtomicU64,
    pub flushed_bytes: AtomicU64,
    pub compactions: AtomicU64,
    pub trivial_moves: AtomicU64,
    pub compaction_bytes_read: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub user_bytes: AtomicU64,
    pub slowdowns: AtomicU64,
    pub slowdown_micros: AtomicU64,
    pub stops: AtomicU64,
    pub stop_micros: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
