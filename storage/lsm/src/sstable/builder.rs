//! Writes a table: data blocks, filter, index, properties, footer.
//!
//! The file is written under a `.tmp` name, fsynced, renamed into place and the directory
//! fsynced, so a table either exists whole or not at all. Keys must be added in increasing
//! internal-key order.

use std::path::{Path, PathBuf};

use super::block::{BlockBuilder, ALIGN};
use super::bloom::BloomBuilder;
use super::footer::{BlockHandle, Footer};
use super::index::IndexBuilder;
use super::properties::Properties;
use crate::error::Result;
use crate::ikey::{IKey, ValueKind};
use crate::vfs::{parent_dir, temp_path, FileRef, Vfs};

/// How tables are laid out.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Target size of a data block before its trailer.
    pub block_bytes: usize,
    /// Entries between restart points.
    pub restart_interval: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            block_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
        }
    }
}

/// Bytes buffered before they are written to the file.
const WRITE_CHUNK: usize = 256 << 10;

/// Written bytes are handed to the device every this many (see
/// [`crate::vfs::VfsFile::start_writeback`]): a flush or compaction then never leaves tens of
/// megabytes dirty for the log's next fsync to wait behind.
const WRITEBACK_BYTES: u64 = 1 << 20;

/// Builds one table file.
#[derive(Debug)]
pub struct TableBuilder<'a> {
    vfs: &'a dyn Vfs,
    path: PathBuf,
    tmp: PathBuf,
    file: FileRef,
    opts: TableConfig,
    written: u64,
    /// Bytes handed to the device so far.
    written_back: u64,
    pending: Vec<u8>,
    block: BlockBuilder,
    index: IndexBuilder,
    bloom: BloomBuilder,
    props: Properties,
    last_user_key: Vec<u8>,
}

impl<'a> TableBuilder<'a> {
    /// Starts a table that will end up at `path`.
    pub fn new(vfs: &'a dyn Vfs, path: &Path, opts: TableConfig) -> Result<Self> {
        let tmp = temp_path(path);
        if vfs.exists(&tmp)? {
            vfs.remove(&tmp)?;
        }
        let file = vfs.create(&tmp)?;
        Ok(TableBuilder {
            vfs,
            path: path.to_path_buf(),
            tmp,
            file,
            block: BlockBuilder::new(opts.restart_interval),
            opts,
            written: 0,
            written_back: 0,
            pending: Vec::with_capacity(WRITE_CHUNK + 8192),
            index: IndexBuilder::default(),
            bloom: BloomBuilder::default(),
            props: Properties::default(),
            last_user_key: Vec::new(),
        })
    }

    /// Adds one version. `ikey` is an encoded internal key.
    pub fn add(&mut self, ikey: &IKey, value: &[u8]) -> Result<()> {
        let user = ikey.user_key();
        let p = &mut self.props;
        if p.entries == 0 {
            p.smallest = ikey.as_bytes().to_vec();
            p.min_seq = ikey.seq();
            p.max_seq = ikey.seq();
        }
        debug_assert!(
            p.entries == 0 || IKey::from_bytes(&p.largest).is_some_and(|last| last < ikey),
            "keys out of order"
        );
        if p.entries == 0 || user != self.last_user_key.as_slice() {
            self.bloom.add(user);
            self.last_user_key.clear();
            self.last_user_key.extend_from_slice(user);
        }
        p.entries += 1;
        p.min_seq = p.min_seq.min(ikey.seq());
        p.max_seq = p.max_seq.max(ikey.seq());
        if ikey.kind() == Some(ValueKind::Delete) {
            p.tombstones += 1;
        }
        p.raw_key_bytes += user.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        p.largest.clear();
        p.largest.extend_from_slice(ikey.as_bytes());

        self.block.add(ikey.as_bytes(), value);
        if self.block.estimated_size() >= self.opts.block_bytes {
            self.finish_block()?;
        }
        Ok(())
    }

    /// Approximate size of the file so far.
    pub fn estimated_size(&self) -> u64 {
        self.written + self.pending.len() as u64 + self.block.estimated_size() as u64
    }

    fn offset(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    fn align(&mut self) {
        let pad = (ALIGN - (self.offset() as usize) % ALIGN) % ALIGN;
        self.pending.resize(self.pending.len() + pad, 0);
    }

    fn finish_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.align();
        let offset = self.offset();
        let last_key = self.block.last_key().to_vec();
        self.block.finish_into(&mut self.pending);
        let handle = BlockHandle {
            offset,
            len: self.offset() - offset,
        };
        self.index.add(&last_key, handle);
        self.props.data_blocks += 1;
        self.flush_pending(false)
    }

    /// Appends a checksummed meta block and returns its handle.
    fn write_meta_block(&mut self, body: &[u8]) -> BlockHandle {
        self.align();
        let offset = self.offset();
        self.pending.extend_from_slice(body);
        let crc = crc32fast::hash(body);
        self.pending.extend_from_slice(&crc.to_le_bytes());
        BlockHandle {
            offset,
            len: self.offset() - offset,
        }
    }

    fn flush_pending(&mut self, force: bool) -> Result<()> {
        if self.pending.len() >= WRITE_CHUNK || (force && !self.pending.is_empty()) {
            self.file.write_at(self.written, &self.pending)?;
            self.written += self.pending.len() as u64;
            self.pending.clear();
            if self.written - self.written_back >= WRITEBACK_BYTES {
                self.file
                    .start_writeback(self.written_back, self.written - self.written_back)?;
                self.written_back = self.written;
            }
        }
        Ok(())
    }

    /// Writes the rest of the table, makes it durable and moves it into place. Returns the
    /// table's properties and file size.
    pub fn finish(mut self) -> Result<(Properties, u64)> {
        let result = self.finish_inner();
        if result.is_err() {
            let _ = self.vfs.remove(&self.tmp);
        }
        result
    }

    fn finish_inner(&mut self) -> Result<(Properties, u64)> {
        self.finish_block()?;
        let filter = self.bloom.build(self.opts.bloom_bits_per_key);
        let filter = self.write_meta_block(&filter);
        let index = self.index.finish();
        let index = self.write_meta_block(&index);
        let props_body = self.props.encode();
        let properties = self.write_meta_block(&props_body);
        let footer = Footer {
            index,
            filter,
            properties,
        };
        self.pending.extend_from_slice(&footer.encode());
        self.flush_pending(true)?;
        self.file.sync_data()?;
        self.vfs.rename(&self.tmp, &self.path)?;
        self.vfs.sync_dir(parent_dir(&self.path))?;
        Ok((self.props.clone(), self.written))
    }

    /// Gives up on the table and removes its temporary file.
    pub fn abandon(self) {
        let _ = self.vfs.remove(&self.tmp);
    }
}
