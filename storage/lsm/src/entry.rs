//! One version of one key, as iterators over memtables and SSTables yield it.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::ikey::{cmp_parts, ValueKind};

/// A key version: user key, sequence number, kind and value (empty for deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user key.
    pub key: Bytes,
    /// The version's sequence number.
    pub seq: u64,
    /// Put or delete.
    pub kind: ValueKind,
    /// The value (empty for a delete).
    pub value: Bytes,
}

impl Entry {
    /// Orders entries as internal keys order: key ascending, then newest first.
    pub fn cmp_key(&self, other: &Entry) -> Ordering {
        cmp_parts(&self.key, self.seq, &other.key, other.seq)
    }
}
