//! Iteration over a memtable that owns its memtable (so it can outlive a borrow).
//!
//! The skip list's own range iterator borrows the map, so this iterator refills a small buffer
//! with a fresh range query after the last key it returned: O(log n) per refill, amortized over
//! the buffer. Refills start small and grow, so a short scan does not copy entries it will
//! never use.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::Memtable;
use crate::entry::Entry;
use crate::ikey::{IKey, InternalKey, ValueKind};

const FIRST_REFILL: usize = 16;
const MAX_REFILL: usize = 1024;

/// Iterates over every version in a memtable between user-key bounds, in internal-key order.
#[derive(Debug)]
pub struct MemtableIter {
    table: Arc<Memtable>,
    next_from: Bound<InternalKey>,
    upper: Bound<InternalKey>,
    buf: VecDeque<Entry>,
    refill: usize,
    exhausted: bool,
}

impl MemtableIter {
    /// Versions of keys within (`lower`, `upper`) (user-key bounds).
    pub fn new(table: Arc<Memtable>, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Self {
        // Every version of a user key k lies between (k, MAX seq) and (k, 0).
        let next_from = match lower {
            Bound::Included(k) => Bound::Included(InternalKey::new(k, u64::MAX, ValueKind::Put)),
            Bound::Excluded(k) => Bound::Excluded(InternalKey::new(k, 0, ValueKind::Put)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let upper = match upper {
            Bound::Included(k) => Bound::Included(InternalKey::new(k, 0, ValueKind::Put)),
            Bound::Excluded(k) => Bound::Excluded(InternalKey::new(k, u64::MAX, ValueKind::Put)),
            Bound::Unbounded => Bound::Unbounded,
        };
        MemtableIter {
            table,
            next_from,
            upper,
            buf: VecDeque::new(),
            refill: FIRST_REFILL,
            exhausted: false,
        }
    }

    fn refill(&mut self) {
        let lo = match &self.next_from {
            Bound::Included(k) => Bound::Included(k.as_ikey()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ikey()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let hi = match &self.upper {
            Bound::Included(k) => Bound::Included(k.as_ikey()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ikey()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut last = None;
        let want = self.refill;
        self.refill = (self.refill * 4).min(MAX_REFILL);
        for e in self.table.map.range::<IKey, _>((lo, hi)).take(want) {
            let ikey = e.key().as_ikey();
            self.buf.push_back(Entry {
                key: Bytes::copy_from_slice(ikey.user_key()),
                seq: ikey.seq(),
                kind: ikey.kind().unwrap_or(ValueKind::Delete),
                value: e.value().clone(),
            });
            last = Some(e.key().clone());
        }
        if self.buf.len() < want {
            self.exhausted = true;
        }
        if let Some(k) = last {
            self.next_from = Bound::Excluded(k);
        }
    }
}

impl Iterator for MemtableIter {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.buf.is_empty() && !self.exhausted {
            self.refill();
        }
        self.buf.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikey::seq_of;

    #[test]
    fn iterates_in_order_within_bounds_across_refills() {
        let m = Arc::new(Memtable::new());
        for i in 0..1000u32 {
            let k = format!("k{i:04}");
            m.insert(k.as_bytes(), seq_of(1, 0), ValueKind::Put, Bytes::new());
            m.insert(k.as_bytes(), seq_of(2, 0), ValueKind::Delete, Bytes::new());
        }
        let all: Vec<_> =
            MemtableIter::new(m.clone(), Bound::Unbounded, Bound::Unbounded).collect();
        assert_eq!(all.len(), 2000);
        assert!(all.windows(2).all(|w| w[0].cmp_key(&w[1]).is_lt()));
        let some: Vec<_> = MemtableIter::new(
            m.clone(),
            Bound::Excluded(b"k0100"),
            Bound::Included(b"k0200"),
        )
        .collect();
        assert_eq!(some.len(), 200);
        assert_eq!(&some[0].key[..], b"k0101");
        assert_eq!(&some[199].key[..], b"k0200");
        let none: Vec<_> =
            MemtableIter::new(m, Bound::Included(b"k0500"), Bound::Excluded(b"k0500")).collect();
        assert!(none.is_empty());
    }
}
