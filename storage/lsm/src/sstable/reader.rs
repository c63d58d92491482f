//! Reading a table through a memory map.
//!
//! Opening a table checks its footer, index, filter and properties blocks. A data block's
//! checksum is checked the first time it is used; a bitmap remembers which blocks passed so the
//! check is not repeated (the file is immutable and never rewritten while mapped). A block that
//! fails is an error naming the file and offset, never wrong data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::block::{self, Block};
use super::bloom::BloomFilter;
use super::footer::{BlockHandle, Footer, FOOTER_LEN};
use super::index::{self, IndexEntry};
use super::iter::TableIter;
use super::properties::Properties;
use crate::codec::u32_at;
use crate::error::{Error, Result};
use crate::ikey::{InternalKey, ValueKind};
use crate::memtable::Lookup;
use crate::vfs::Vfs;

/// What a point lookup in one table found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableGet {
    /// The bloom filter ruled the key out without touching a data block.
    FilteredOut,
    /// The filter let the key through but the table has no visible version of it.
    NotFound,
    /// The newest visible version.
    Found(Lookup),
}

/// An open, immutable table.
#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    data: Bytes,
    index: Vec<IndexEntry>,
    filter: BloomFilter,
    verified: Box<[AtomicU64]>,
}

impl Table {
    /// Maps and checks the table at `path`.
    pub fn open(vfs: &dyn Vfs, path: &Path) -> Result<Table> {
        let data = vfs.map(path)?;
        let corrupt = |offset: u64, reason: &str| Error::corruption(path, offset, reason);
        let len = data.len() as u64;
        if data.len() < FOOTER_LEN {
            return Err(corrupt(0, "file shorter than a table footer"));
        }
        let footer_at = data.len() - FOOTER_LEN;
        let footer =
            Footer::decode(&data[footer_at..], len).map_err(|r| corrupt(footer_at as u64, r))?;
        let body = |h: BlockHandle, what: &str| -> Result<Bytes> {
            let (start, end) = (h.offset as usize, (h.offset + h.len) as usize);
            let raw = data.slice(start..end);
            let n = raw.len();
            let ok = n >= 4 && u32_at(&raw, n - 4) == Some(crc32fast::hash(&raw[..n - 4]));
            if !ok {
                return Err(corrupt(
                    h.offset,
                    &format!("{what} block checksum mismatch"),
                ));
            }
            Ok(raw.slice(..n - 4))
        };
        let index = index::decode(&body(footer.index, "index")?)
            .ok_or_else(|| corrupt(footer.index.offset, "malformed index block"))?;
        let filter = BloomFilter::parse(body(footer.filter, "filter")?)
            .ok_or_else(|| corrupt(footer.filter.offset, "malformed filter block"))?;
        // Nothing reads the properties after open; decoding them still rejects a damaged block.
        Properties::decode(&body(footer.properties, "properties")?)
            .ok_or_else(|| corrupt(footer.properties.offset, "malformed properties block"))?;
        let data_end = footer.filter.offset.min(footer.index.offset);
        for e in &index {
            // The index's checksum only says it was written so: a handle is still checked, and
            // without overflowing, before any block is sliced by it.
            let end = e.handle.offset.checked_add(e.handle.len);
            if end.is_none_or(|end| end > data_end) {
                return Err(corrupt(
                    footer.index.offset,
                    "index points outside the data",
                ));
            }
        }
        let verified = (0..index.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Ok(Table {
            path: path.to_path_buf(),
            data,
            index,
            filter,
            verified,
        })
    }

    /// The file this table was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.data.len() as u64
    }

    /// CRC32 of the whole file (for checkpoint listings).
    pub fn file_crc32(&self) -> u32 {
        crc32fast::hash(&self.data)
    }

    /// Number of data blocks.
    pub fn block_count(&self) -> usize {
        self.index.len()
    }

    pub(super) fn index(&self) -> &[IndexEntry] {
        &self.index
    }

    /// Data block `i`, checksum-verified.
    pub fn block(&self, i: usize) -> Result<Block> {
        let Some(entry) = self.index.get(i) else {
            return Err(Error::corruption(
                &self.path,
                0,
                format!("no data block {i}"),
            ));
        };
        let h = entry.handle;
        let raw = self
            .data
            .slice(h.offset as usize..(h.offset + h.len) as usize);
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let known_good = self.verified[word].load(Ordering::Relaxed) & bit != 0;
        let block = block::open(&raw, !known_good)
            .map_err(|reason| Error::corruption(&self.path, h.offset, reason))?;
        if !known_good {
            self.verified[word].fetch_or(bit, Ordering::Relaxed);
        }
        Ok(block)
    }

    /// The newest version of `user_key` visible at `snapshot`; the bloom filter is asked first.
    pub fn get(&self, user_key: &[u8], snapshot: u64) -> Result<TableGet> {
        if !self.filter.may_contain(user_key) {
            return Ok(TableGet::FilteredOut);
        }
        let probe = InternalKey::new(user_key, snapshot, ValueKind::Put);
        let target = probe.as_ikey();
        let i = self
            .index
            .partition_point(|e| e.last_ikey().is_some_and(|k| k < target));
        if i == self.index.len() {
            return Ok(TableGet::NotFound);
        }
        let block = self.block(i)?;
        let mut it = block.iter();
        let corrupt = |r| Error::corruption(&self.path, self.index[i].handle.offset, r);
        if !it.seek(target).map_err(corrupt)? {
            return Ok(TableGet::NotFound);
        }
        let found = it.current_ikey().map_err(corrupt)?;
        if found.user_key() != user_key {
            return Ok(TableGet::NotFound);
        }
        Ok(TableGet::Found(match found.kind() {
            Some(ValueKind::Put) => Lookup::Value(it.value().clone()),
            Some(ValueKind::Delete) => Lookup::Deleted,
            None => return Err(corrupt("unknown value kind")),
        }))
    }

    /// Iterates over the versions of user keys within the bounds.
    pub fn iter(
        self: &Arc<Self>,
        lower: std::ops::Bound<&[u8]>,
        upper: std::ops::Bound<&[u8]>,
    ) -> TableIter {
        TableIter::new(self.clone(), lower, upper)
    }

    /// Reads every data block, checking checksums and entry structure, whatever was verified
    /// before. Returns the first problem found.
    pub fn verify(&self) -> Result<()> {
        for (i, e) in self.index.iter().enumerate() {
            let h = e.handle;
            let raw = self
                .data
                .slice(h.offset as usize..(h.offset + h.len) as usize);
            let corrupt = |reason| Error::corruption(&self.path, h.offset, reason);
            let block = block::verify(&raw).map_err(corrupt)?;
            let mut it = block.iter();
            let mut last = None::<Vec<u8>>;
            while it.advance().map_err(corrupt)? {
                let k = it.current_ikey().map_err(corrupt)?;
                if k.kind().is_none() {
                    return Err(corrupt("unknown value kind"));
                }
                if let Some(prev) = last.as_deref().and_then(crate::ikey::IKey::from_bytes) {
                    if prev >= k {
                        return Err(corrupt("keys out of order"));
                    }
                }
                last = Some(it.key().to_vec());
            }
            if last.as_deref() != Some(&e.last_key[..]) {
                return Err(corrupt("block's last key differs from the index"));
            }
            self.verified[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sstable::block::BlockBuilder;
    use crate::sstable::bloom::BloomBuilder;
    use crate::sstable::index::IndexBuilder;
    use crate::vfs::SimVfs;

    /// A table of one data block whose index entry holds the handle `handle` makes of the
    /// block's own, every checksum valid.
    fn table_with_index_entry(handle: impl Fn(BlockHandle) -> BlockHandle) -> Vec<u8> {
        let key = InternalKey::new(b"k", 1, ValueKind::Put);
        let mut file = Vec::new();
        let mut block = BlockBuilder::new(16);
        block.add(key.as_bytes(), b"v");
        block.finish_into(&mut file);
        let data = BlockHandle {
            offset: 0,
            len: file.len() as u64,
        };
        let mut meta_block = |body: &[u8]| {
            let offset = file.len() as u64;
            file.extend_from_slice(body);
            file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            BlockHandle {
                offset,
                len: body.len() as u64 + 4,
            }
        };
        let mut bloom = BloomBuilder::default();
        bloom.add(b"k");
        let filter = meta_block(&bloom.build(10));
        let mut index = IndexBuilder::default();
        index.add(key.as_bytes(), handle(data));
        let index = meta_block(&index.finish());
        let properties = meta_block(&Properties::default().encode());
        let footer = Footer {
            index,
            filter,
            properties,
        };
        file.extend_from_slice(&footer.encode());
        file
    }

    fn open(file: &[u8]) -> Result<Table> {
        let vfs = SimVfs::new(1);
        let path = Path::new("/t/000001.sst");
        vfs.create_dir_all(Path::new("/t"))?;
        vfs.create(path)?.write_at(0, file)?;
        Table::open(&vfs, path)
    }

    #[test]
    fn an_index_entry_running_past_the_largest_offset_fails_the_open() {
        let good = open(&table_with_index_entry(|h| h)).unwrap();
        assert!(matches!(good.get(b"k", u64::MAX), Ok(TableGet::Found(_))));
        for offset in [u64::MAX - 7, u64::MAX] {
            let file = table_with_index_entry(|h| BlockHandle { offset, ..h });
            let err = open(&file).unwrap_err();
            assert!(
                matches!(&err, Error::Corruption { reason, .. } if reason == "index points outside the data"),
                "{err}"
            );
        }
    }
}
