//! Data blocks: sorted internal keys with prefix compression and restart points.
//!
//! ```text
//! entry*:   shared varint | unshared varint | value_len varint | key suffix |
//!           zero padding so the value starts 16-byte aligned (only if value_len > 0) | value
//! trailer:  restart offsets u32* | restart count u32 | crc32 u32 (of everything before it)
//! ```
//!
//! Every `restart_interval`-th entry stores its whole key (shared = 0) and its offset is a
//! restart point, so a seek can binary-search the restarts and then scan a few entries. Blocks
//! start at 16-byte aligned file offsets, so values are 16-byte aligned in a mapped file too
//! (zero-copy readers of archived records rely on that).

use std::cmp::Ordering;

use bytes::Bytes;

use crate::codec::{get_varint, put_varint, u32_at};
use crate::ikey::IKey;

/// Alignment of block starts and of values within blocks.
pub const ALIGN: usize = 16;

fn pad_for(pos: usize) -> usize {
    (ALIGN - pos % ALIGN) % ALIGN
}

/// Accumulates entries of one block.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    since_restart: usize,
    restart_interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    /// A builder that places a restart point every `restart_interval` entries.
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::with_capacity(8 << 10),
            restarts: Vec::new(),
            since_restart: 0,
            restart_interval: restart_interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Adds an entry; keys must arrive in increasing internal-key order.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) {
        let shared = if self.since_restart == 0 {
            self.restarts.push(self.buf.len() as u32);
            0
        } else {
            self.last_key
                .iter()
                .zip(ikey)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (ikey.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&ikey[shared..]);
        if !value.is_empty() {
            let pad = pad_for(self.buf.len());
            self.buf.resize(self.buf.len() + pad, 0);
            self.buf.extend_from_slice(value);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        self.since_restart = (self.since_restart + 1) % self.restart_interval;
        self.entries += 1;
    }

    /// Bytes the finished block would take.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 8
    }

    /// Whether no entry was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added.
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Finishes the block into `out` (restarts, count, checksum) and resets the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        self.buf.clear();
        self.restarts.clear();
        self.since_restart = 0;
        self.entries = 0;
    }
}

/// Checks a stored block's checksum and returns the parsed block.
pub fn verify(block: &Bytes) -> Result<Block, &'static str> {
    open(block, true)
}

/// Parses a stored block, checking its checksum when `check` is set (callers skip it only for
/// blocks they verified before).
pub fn open(block: &Bytes, check: bool) -> Result<Block, &'static str> {
    let n = block.len();
    if n < 8 {
        return Err("block shorter than its trailer");
    }
    let stored = u32_at(block, n - 4).ok_or("block shorter than its trailer")?;
    if check && crc32fast::hash(&block[..n - 4]) != stored {
        return Err("block checksum mismatch");
    }
    Block::parse(block.slice(..n - 4))
}

/// A verified block: entries followed by the restart array.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    entries_end: usize,
    restarts: usize,
}

impl Block {
    fn parse(data: Bytes) -> Result<Block, &'static str> {
        let n = data.len();
        let count = u32_at(&data, n - 4).ok_or("block shorter than its trailer")? as usize;
        let restarts_len = count.checked_mul(4).ok_or("bad restart count")?;
        let entries_end = (n - 4)
            .checked_sub(restarts_len)
            .ok_or("restart array larger than the block")?;
        if count == 0 && entries_end > 0 {
            return Err("entries without restart points");
        }
        Ok(Block {
            data,
            entries_end,
            restarts: count,
        })
    }

    fn restart(&self, i: usize) -> Option<usize> {
        Some(u32_at(&self.data, self.entries_end + 4 * i)? as usize)
    }

    /// An iterator positioned before the first entry.
    pub fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            pos: 0,
            key: Vec::new(),
            value: Bytes::new(),
        }
    }
}

/// Walks the entries of a verified block.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    pos: usize,
    key: Vec<u8>,
    value: Bytes,
}

impl BlockIter {
    /// The current entry's internal key (valid after `next` returned `Ok(true)`).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current entry's value.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// Moves to the next entry: `Ok(false)` at the end, `Err` if the block is malformed.
    pub fn advance(&mut self) -> Result<bool, &'static str> {
        if self.pos >= self.block.entries_end {
            return Ok(false);
        }
        let data = &self.block.data[..self.block.entries_end];
        let mut pos = self.pos;
        let mut varint = || -> Result<usize, &'static str> {
            let (v, n) = get_varint(data.get(pos..).ok_or("entry past block end")?)
                .ok_or("bad varint in block")?;
            pos += n;
            usize::try_from(v).map_err(|_| "bad length in block")
        };
        let shared = varint()?;
        let unshared = varint()?;
        let value_len = varint()?;
        if shared > self.key.len() {
            return Err("entry shares more than the previous key");
        }
        let suffix = data
            .get(pos..pos.checked_add(unshared).ok_or("bad key length")?)
            .ok_or("key past block end")?;
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        if IKey::from_bytes(&self.key).is_none() {
            return Err("internal key too short");
        }
        pos += unshared;
        if value_len > 0 {
            pos += pad_for(pos);
        }
        let end = pos.checked_add(value_len).ok_or("bad value length")?;
        if end > data.len() {
            return Err("value past block end");
        }
        self.value = self.block.data.slice(pos..end);
        self.pos = end;
        Ok(true)
    }

    /// Positions on the first entry whose internal key is at or after `target`: `Ok(true)` if
    /// there is one.
    pub fn seek(&mut self, target: &IKey) -> Result<bool, &'static str> {
        // Binary search for the last restart whose key is below the target.
        let (mut lo, mut hi) = (0usize, self.block.restarts);
        while lo < hi {
            let mid = (lo + hi) / 2;
            self.pos = self.block.restart(mid).ok_or("bad restart offset")?;
            self.key.clear();
            if !self.advance()? {
                return Err("restart offset past the entries");
            }
            match self.current_ikey()?.cmp(target) {
                Ordering::Less => lo = mid + 1,
                _ => hi = mid,
            }
        }
        self.pos = match lo {
            0 => 0,
            i => self.block.restart(i - 1).ok_or("bad restart offset")?,
        };
        self.key.clear();
        while self.advance()? {
            if self.current_ikey()? >= target {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The current key as an internal key.
    pub fn current_ikey(&self) -> Result<&IKey, &'static str> {
        IKey::from_bytes(&self.key).ok_or("internal key too short")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikey::{InternalKey, ValueKind};

    fn build(n: u32) -> (Bytes, Vec<InternalKey>) {
        let mut b = BlockBuilder::new(4);
        let mut keys = Vec::new();
        for i in 0..n {
            let k = InternalKey::new(
                format!("key{:03}", i / 2).as_bytes(),
                u64::from(100 - i),
                ValueKind::Put,
            );
            b.add(k.as_bytes(), format!("v{i}").as_bytes());
            keys.push(k);
        }
        let mut out = Vec::new();
        b.finish_into(&mut out);
        // Mimic a mapped file: copy to a 16-aligned buffer.
        let mut v = vec![0u8; out.len() + 16];
        let s = v.as_ptr().align_offset(16);
        v[s..s + out.len()].copy_from_slice(&out);
        (Bytes::from(v).slice(s..s + out.len()), keys)
    }

    #[test]
    fn iterates_all_entries_with_aligned_values() {
        let (raw, keys) = build(37);
        let block = verify(&raw).unwrap();
        let mut it = block.iter();
        let mut i = 0;
        while it.advance().unwrap() {
            assert_eq!(it.key(), keys[i].as_bytes());
            assert_eq!(&it.value()[..], format!("v{i}").as_bytes());
            assert_eq!(it.value().as_ptr() as usize % ALIGN, 0);
            i += 1;
        }
        assert_eq!(i, 37);
    }

    #[test]
    fn seek_finds_the_first_key_at_or_after_the_target() {
        let (raw, keys) = build(37);
        let block = verify(&raw).unwrap();
        for (i, k) in keys.iter().enumerate() {
            let mut it = block.iter();
            assert!(it.seek(k.as_ikey()).unwrap());
            assert_eq!(it.key(), k.as_bytes(), "seek {i}");
        }
        let past = InternalKey::new(b"zzz", 0, ValueKind::Put);
        assert!(!block.iter().seek(past.as_ikey()).unwrap());
        let before = InternalKey::new(b"a", 0, ValueKind::Put);
        let mut it = block.iter();
        assert!(it.seek(before.as_ikey()).unwrap());
        assert_eq!(it.key(), keys[0].as_bytes());
    }

    #[test]
    fn any_flipped_byte_is_caught_by_the_checksum() {
        let (raw, _) = build(10);
        for i in 0..raw.len() {
            let mut bad = raw.to_vec();
            bad[i] ^= 0x10;
            assert!(verify(&Bytes::from(bad)).is_err(), "flip at {i}");
        }
    }
}
