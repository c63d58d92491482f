//! Counters the WAL keeps about itself.

use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time copy of the WAL's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalStats {
    /// `append` calls accepted.
    pub appends: u64,
    /// Entries appended.
    pub entries: u64,
    /// Bytes written to segments (frames included).
    pub bytes: u64,
    /// Flush rounds: each made everything queued before it durable at once.
    pub groups: u64,
    /// The most commands one flush round completed.
    pub largest_group: u64,
    /// `sync_data` calls on segment files.
    pub segment_syncs: u64,
    /// Directory fsyncs (segment creation, truncation).
    pub dir_syncs: u64,
    /// Durable writes of the metadata file.
    pub meta_writes: u64,
    /// Total time spent in fsync calls, in nanoseconds.
    pub fsync_nanos: u64,
    /// The slowest single flush round's fsync time, in nanoseconds.
    pub max_fsync_nanos: u64,
    /// Highest index known durable (0 before the first).
    pub durable_index: u64,
    /// Torn tails cut off when the WAL was opened.
    pub torn_tails_repaired: u64,
    /// Segment files currently in the log.
    pub segments: u64,
}

impl WalStats {
    /// Every fsync the WAL issued: segments, directories and metadata.
    pub fn fsyncs(&self) -> u64 {
        self.segment_syncs + self.dir_syncs + self.meta_writes
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    pub groups: AtomicU64,
    pub largest_group: AtomicU64,
    pub segment_syncs: AtomicU64,
    pub dir_syncs: AtomicU64,
    pub meta_writes: AtomicU64,
    pub fsync_nanos: AtomicU64,
    pub max_fsync_nanos: AtomicU64,
    pub durable_index: AtomicU64,
    pub torn_tails_repaired: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self, segments: u64) -> WalStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WalStats {
            appends: get(&self.appends),
            entries: get(&self.entries),
            bytes: get(&self.bytes),
            groups: get(&self.groups),
            largest_group: get(&self.largest_group),
            segment_syncs: get(&self.segment_syncs),
            dir_syncs: get(&self.dir_syncs),
            meta_writes: get(&self.meta_writes),
            fsync_nanos: get(&self.fsync_nanos),
            max_fsync_nanos: get(&self.max_fsync_nanos),
            durable_index: get(&self.durable_index),
            torn_tails_repaired: get(&self.torn_tails_repaired),
            segments,
        }
    }
}
