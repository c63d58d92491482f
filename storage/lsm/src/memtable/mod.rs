//! The memtable: recent writes in a lock-free skip list, ordered by internal key.
//!
//! Writes come from one applier at a time (the engine serializes batches) while any number of
//! readers look up and iterate. A memtable only grows; the engine freezes it (between batches)
//! once it reaches its size limit and a background thread writes it to an L0 SSTable.

mod iter;
mod packed;

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

pub use crate::entry::Entry;
pub use iter::MemtableIter;
pub use packed::pack_values;

use crate::ikey::{IKey, InternalKey, ValueKind, TRAILER};

/// Approximate per-entry cost of the skip list node beyond key and value bytes.
const NODE_OVERHEAD: usize = 64;

/// What a point lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible version holds this value.
    Value(Bytes),
    /// The newest visible version is a delete.
    Deleted,
}

/// Memtables with more entries than this are freed on a thread of their own.
const BACKGROUND_DROP_ENTRIES: usize = 4096;

/// An in-memory, sorted table of key versions.
#[derive(Debug)]
pub struct Memtable {
    map: SkipMap<InternalKey, Bytes>,
    bytes: AtomicUsize,
    max_index: AtomicU64,
}

impl Drop for Memtable {
    fn drop(&mut self) {
        // Freeing a full memtable takes tens of milliseconds, and the last holder may be a
        // writer or reader on the hot path; hand the work to a short-lived thread.
        if self.map.len() > BACKGROUND_DROP_ENTRIES {
            let map = std::mem::take(&mut self.map);
            let spawned = std::thread::Builder::new()
                .name("qastore-memtable-free".into())
                .spawn(move || drop(map));
            if let Err(e) = spawned {
                tracing::debug!(error = %e, "freeing a memtable inline");
            }
        }
    }
}

impl Default for Memtable {
    fn default() -> Self {
        Self::new()
    }
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Memtable {
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            max_index: AtomicU64::new(0),
        }
    }

    /// Inserts one version. Sequence numbers are unique, so nothing is ever replaced.
    pub fn insert(&self, user_key: &[u8], seq: u64, kind: ValueKind, value: Bytes) {
        let cost = user_key.len() + TRAILER + value.len() + NODE_OVERHEAD;
        self.map
            .insert(InternalKey::new(user_key, seq, kind), value);
        self.bytes.fetch_add(cost, Ordering::Relaxed);
    }

    /// Records that every batch up to `index` has been applied into this memtable (batches may
    /// be empty, so this is tracked apart from the entries).
    pub fn set_max_index(&self, index: u64) {
        self.max_index.fetch_max(index, Ordering::Release);
    }

    /// The highest log index applied into this memtable (0 if none).
    pub fn max_index(&self) -> u64 {
        self.max_index.load(Ordering::Acquire)
    }

    /// The newest version of `user_key` with a sequence number at or below `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot: u64) -> Option<Lookup> {
        // Kind does not take part in ordering; any byte works for the probe. Short keys are
        // encoded on the stack: this is the hot path of every read.
        let mut stack = [0u8; 128];
        let heap;
        let probe: &[u8] = if user_key.len() + TRAILER <= stack.len() {
            let n = user_key.len();
            stack[..n].copy_from_slice(user_key);
            stack[n..n + 8].copy_from_slice(&snapshot.to_be_bytes());
            stack[n + 8] = ValueKind::Put as u8;
            &stack[..n + TRAILER]
        } else {
            heap = InternalKey::new(user_key, snapshot, ValueKind::Put);
            heap.as_bytes()
        };
        let probe = IKey::from_bytes(probe)?;
        let entry = self.map.lower_bound(Bound::Included(probe))?;
        let ikey = entry.key().as_ikey();
        if ikey.user_key() != user_key {
            return None;
        }
        Some(match ikey.kind() {
            Some(ValueKind::Put) => Lookup::Value(entry.value().clone()),
            _ => Lookup::Deleted,
        })
    }

    /// Every version in internal-key order (for flushing a frozen memtable).
    pub fn map_iter(&self) -> crossbeam_skiplist::map::Iter<'_, InternalKey, Bytes> {
        self.map.iter()
    }

    /// Approximate memory used, in bytes.
    pub fn approx_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of key versions held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the memtable holds no versions.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikey::seq_of;

    #[test]
    fn reads_see_the_newest_version_at_or_below_the_snapshot() {
        let m = Memtable::new();
        m.insert(
            b"k",
            seq_of(1, 0),
            ValueKind::Put,
            Bytes::from_static(b"v1"),
        );
        m.insert(b"k", seq_of(2, 0), ValueKind::Delete, Bytes::new());
        m.insert(
            b"k",
            seq_of(3, 1),
            ValueKind::Put,
            Bytes::from_static(b"v3"),
        );
        m.insert(
            b"k2",
            seq_of(1, 1),
            ValueKind::Put,
            Bytes::from_static(b"x"),
        );
        assert_eq!(m.get(b"k", seq_of(0, 5)), None);
        assert_eq!(
            m.get(b"k", seq_of(1, 9)),
            Some(Lookup::Value(Bytes::from_static(b"v1")))
        );
        assert_eq!(m.get(b"k", seq_of(2, 0)), Some(Lookup::Deleted));
        assert_eq!(
            m.get(b"k", u64::MAX),
            Some(Lookup::Value(Bytes::from_static(b"v3")))
        );
        assert_eq!(m.get(b"j", u64::MAX), None);
        assert_eq!(m.len(), 4);
        assert!(m.approx_bytes() > 4 * NODE_OVERHEAD);
    }
}
