//! The read path: point lookups and scans at the last applied batch.
//!
//! A reader takes the snapshot sequence number first and the view (memtables and tables) second:
//! whatever the snapshot covers is in that view, because a flush only ever moves data from a
//! memtable into a table of a newer view.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::{Engine, View};
use crate::error::Result;
use crate::memtable::{Lookup, MemtableIter};
use crate::merge::{MergeIter, Source, VisibleIter};

impl Engine {
    /// The value of `key` as of the last applied batch.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        // Snapshot first, then the view: whatever the snapshot covers is in that view (a flush
        // only ever moves data from a memtable to a table of a newer view).
        let snapshot = self.inner.visible_seq.load(Ordering::Acquire);
        let view = self.inner.view();
        let found = std::iter::once(&view.active)
            .chain(view.immutables.iter().rev())
            .find_map(|m| m.get(key, snapshot));
        let found = match found {
            Some(l) => Some(l),
            None => view.version.get(key, snapshot, &self.inner.reads)?,
        };
        Ok(match found {
            Some(Lookup::Value(v)) => Some(v),
            Some(Lookup::Deleted) | None => None,
        })
    }

    /// Iterates over the keys within the bounds, in order, as of the last applied batch.
    pub fn scan(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> EngineIter {
        let snapshot = self.inner.visible_seq.load(Ordering::Acquire);
        scan_view(self.inner.view(), snapshot, lower, upper)
    }

    /// A read view fixed at the last applied batch: every scan and lookup through it sees the
    /// same state, however many batches are applied meanwhile. It holds the tables it reads
    /// from, so keep it only for the length of one read.
    pub fn read_view(&self) -> ReadView {
        let snapshot = self.inner.visible_seq.load(Ordering::Acquire);
        ReadView {
            snapshot,
            view: self.inner.view(),
        }
    }

    /// A hash of every key and value as of the last applied batch. Replicas that applied the
    /// same log up to the same index have the same hash, however their data is laid out in
    /// memtables and tables.
    pub fn state_hash(&self) -> Result<u64> {
        self.scan(Bound::Unbounded, Bound::Unbounded).state_hash()
    }

    /// Iterates over every key starting with `prefix`.
    pub fn scan_prefix(&self, prefix: &[u8]) -> EngineIter {
        match prefix_end(prefix) {
            Some(end) => self.scan(Bound::Included(prefix), Bound::Excluded(&end)),
            None => self.scan(Bound::Included(prefix), Bound::Unbounded),
        }
    }
}

fn scan_view(
    view: Arc<View>,
    snapshot: u64,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
) -> EngineIter {
    let mut sources: Vec<Source> = Vec::new();
    for m in std::iter::once(&view.active).chain(view.immutables.iter().rev()) {
        sources.push(Box::new(MemtableIter::new(m.clone(), lower, upper).map(Ok)));
    }
    sources.extend(view.version.iters(lower, upper));
    EngineIter {
        inner: VisibleIter::new(MergeIter::new(sources), snapshot),
        _view: view,
    }
}

/// Reads at one fixed point of the engine: the batch that was last applied when it was taken
/// ([`Engine::read_view`]).
pub struct ReadView {
    snapshot: u64,
    view: Arc<View>,
}

impl ReadView {
    /// The log index of the last batch it sees.
    pub fn applied_index(&self) -> u64 {
        crate::ikey::index_of(self.snapshot)
    }

    /// Iterates over the keys within the bounds, in order, as of this view.
    pub fn scan(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> EngineIter {
        scan_view(self.view.clone(), self.snapshot, lower, upper)
    }

    /// Iterates over every key starting with `prefix`, as of this view.
    pub fn scan_prefix(&self, prefix: &[u8]) -> EngineIter {
        match prefix_end(prefix) {
            Some(end) => scan_view(
                self.view.clone(),
                self.snapshot,
                Bound::Included(prefix),
                Bound::Excluded(&end),
            ),
            None => scan_view(
                self.view.clone(),
                self.snapshot,
                Bound::Included(prefix),
                Bound::Unbounded,
            ),
        }
    }
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("applied_index", &self.applied_index())
            .finish()
    }
}

/// The first key after every key starting with `prefix`, or `None` if there is none.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Iterator over `(key, value)` pairs returned by [`Engine::scan`]. It reads a fixed snapshot:
/// batches applied after it was created are not seen.
pub struct EngineIter {
    inner: VisibleIter,
    /// Keeps the tables being read from being deleted by a compaction.
    _view: Arc<View>,
}

impl EngineIter {
    /// A hash of every key and value this iterator yields (see [`Engine::state_hash`]). An
    /// iterator over the whole key space taken at one point can be hashed later, elsewhere.
    pub fn state_hash(self) -> Result<u64> {
        self.state_hash_skipping(&[])
    }

    /// Like [`EngineIter::state_hash`], leaving out the keys in `skip` (bookkeeping that
    /// differs between stores holding the same data, such as where they are in their logs).
    pub fn state_hash_skipping(self, skip: &[&[u8]]) -> Result<u64> {
        self.state_hash_where(|k| !skip.contains(&k))
    }

    /// Like [`EngineIter::state_hash`], over the keys `keep` accepts only.
    pub fn state_hash_where(self, keep: impl Fn(&[u8]) -> bool) -> Result<u64> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for row in self {
            let (k, v) = row?;
            if !keep(k.as_ref()) {
                continue;
            }
            hasher.update(&(k.len() as u64).to_le_bytes());
            hasher.update(&k);
            hasher.update(&(v.len() as u64).to_le_bytes());
            hasher.update(&v);
        }
        Ok(hasher.digest())
    }
}

impl Iterator for EngineIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
