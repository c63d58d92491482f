//! The sparse index: one entry per data block, the block's last internal key and its handle.
//!
//! ```text
//! count u32 | (key: varint length + bytes, offset varint, len varint)*
//! ```
//! (followed by the block checksum the table builder adds).

use super::footer::BlockHandle;
use crate::codec::{put_len_prefixed, put_varint, Reader};
use crate::ikey::IKey;

/// One index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The last internal key in the block.
    pub last_key: Box<[u8]>,
    /// Where the block is.
    pub handle: BlockHandle,
}

impl IndexEntry {
    /// The last key as an internal key (checked at decode).
    pub fn last_ikey(&self) -> Option<&IKey> {
        IKey::from_bytes(&self.last_key)
    }
}

/// Accumulates index entries while a table is written.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    buf: Vec<u8>,
    count: u32,
}

impl IndexBuilder {
    /// Adds the entry for a finished block.
    pub fn add(&mut self, last_key: &[u8], handle: BlockHandle) {
        put_len_prefixed(&mut self.buf, last_key);
        put_varint(&mut self.buf, handle.offset);
        put_varint(&mut self.buf, handle.len);
        self.count += 1;
    }

    /// The encoded index body.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + 4);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.buf);
        out
    }
}

/// Decodes an index body, checking every key is an internal key and keys ascend.
pub fn decode(buf: &[u8]) -> Option<Vec<IndexEntry>> {
    let mut r = Reader::new(buf);
    let count = r.u32()? as usize;
    let mut out: Vec<IndexEntry> = Vec::with_capacity(count.min(buf.len()));
    for _ in 0..count {
        let key = r.len_prefixed()?;
        let ikey = IKey::from_bytes(key)?;
        if let Some(prev) = out.last().and_then(IndexEntry::last_ikey) {
            if prev >= ikey {
                return None;
            }
        }
        let handle = BlockHandle {
            offset: r.varint()?,
            len: r.varint()?,
        };
        out.push(IndexEntry {
            last_key: key.into(),
            handle,
        });
    }
    r.is_empty().then_some(out)
}
