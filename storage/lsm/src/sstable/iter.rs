//! Iteration over one table between user-key bounds.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::block::BlockIter;
use super::reader::Table;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::ikey::{InternalKey, ValueKind};

/// Yields every version stored in a table for user keys within the bounds, in internal-key
/// order. A damaged block ends the iteration with an error.
#[derive(Debug)]
pub struct TableIter {
    table: Arc<Table>,
    block_index: usize,
    block: Option<BlockIter>,
    seek_to: Option<InternalKey>,
    skip_user_key: Option<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    done: bool,
}

impl TableIter {
    pub(super) fn new(table: Arc<Table>, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Self {
        let (seek_to, skip_user_key) = match lower {
            Bound::Included(k) => (Some(InternalKey::new(k, u64::MAX, ValueKind::Put)), None),
            Bound::Excluded(k) => (
                Some(InternalKey::new(k, u64::MAX, ValueKind::Put)),
                Some(k.to_vec()),
            ),
            Bound::Unbounded => (None, None),
        };
        let block_index = match &seek_to {
            Some(target) => table
                .index()
                .partition_point(|e| e.last_ikey().is_some_and(|k| k < target.as_ikey())),
            None => 0,
        };
        TableIter {
            table,
            block_index,
            block: None,
            seek_to,
            skip_user_key,
            upper: upper.map(<[u8]>::to_vec),
            done: false,
        }
    }

    fn fail(&mut self, reason: &str) -> Option<Result<Entry>> {
        self.done = true;
        let offset = self
            .table
            .index()
            .get(self.block_index)
            .map_or(0, |e| e.handle.offset);
        Some(Err(Error::corruption(self.table.path(), offset, reason)))
    }

    fn past_upper(&self, user_key: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => user_key > u.as_slice(),
            Bound::Excluded(u) => user_key >= u.as_slice(),
            Bound::Unbounded => false,
        }
    }
}

impl Iterator for TableIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if self.done {
                return None;
            }
            let it = match self.block.as_mut() {
                Some(it) => it,
                None => {
                    if self.block_index >= self.table.block_count() {
                        self.done = true;
                        return None;
                    }
                    let block = match self.table.block(self.block_index) {
                        Ok(b) => b,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    };
                    let mut it = block.iter();
                    if let Some(target) = self.seek_to.take() {
                        match it.seek(target.as_ikey()) {
                            // Positioned on the first entry; hand it out below.
                            Ok(true) => {
                                self.block = Some(it);
                                match self.current() {
                                    Some(r) => return Some(r),
                                    None => continue,
                                }
                            }
                            Ok(false) => {
                                self.block_index += 1;
                                continue;
                            }
                            Err(r) => return self.fail(r),
                        }
                    }
                    self.block.insert(it)
                }
            };
            match it.advance() {
                Ok(true) => {
                    if let Some(r) = self.current() {
                        return Some(r);
                    }
                }
                Ok(false) => {
                    self.block = None;
                    self.block_index += 1;
                }
                Err(r) => return self.fail(r),
            }
        }
    }
}

impl TableIter {
    /// The entry under the block iterator, unless it is skipped or past the upper bound.
    fn current(&mut self) -> Option<Result<Entry>> {
        let it = self.block.as_ref()?;
        let (user, seq, kind) = match it.current_ikey() {
            Ok(k) => (k.user_key(), k.seq(), k.kind()),
            Err(r) => return self.fail(r),
        };
        if self.skip_user_key.as_deref() == Some(user) {
            return None;
        }
        self.skip_user_key = None;
        if self.past_upper(user) {
            self.done = true;
            return None;
        }
        let Some(kind) = kind else {
            return self.fail("unknown value kind");
        };
        Some(Ok(Entry {
            key: Bytes::copy_from_slice(user),
            seq,
            kind,
            value: it.value().clone(),
        }))
    }
}
