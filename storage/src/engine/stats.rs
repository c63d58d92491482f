//! What the engine reports about itself.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::version::NUM_LEVELS;

/// One level's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Number of tables.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// A point-in-time copy of the engine's state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Tables per level.
    pub levels: [LevelStats; NUM_LEVELS],
    /// Whether writes are waiting for a flush right now.
    pub write_stalled: bool,
    /// Times a write had to wait for a flush.
    pub stalls: u64,
    /// Total time writes waited, in microseconds.
    pub stall_micros: u64,
    /// Table lookups the bloom filter answered without reading a block.
    pub bloom_useful: u64,
    /// Table lookups the filter let through for a key the table did not hold.
    pub bloom_false_positive: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub flushes: AtomicU64,
    pub flushed_bytes: AtomicU64,
    pub stalls: AtomicU64,
    pub stall_micros: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
