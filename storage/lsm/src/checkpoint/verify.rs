//! Checking a checkpoint end to end: metadata, every file's size and CRC, every table block,
//! and that the manifest describes exactly the listed tables at the listed log index.

use std::collections::BTreeSet;
use std::path::Path;

use super::meta::CheckpointMeta;
use super::CheckpointInfo;

use crate::error::{Error, Result};
use crate::filenames::{classify, table_name, FileKind};
use crate::ikey::index_of;
use crate::manifest;
use crate::sstable::Table;
use crate::vfs::Vfs;

/// Verifies the checkpoint in `dir` and returns what it holds. The first problem found is an
/// error naming the file.
pub fn verify(vfs: &dyn Vfs, dir: &Path) -> Result<CheckpointInfo> {
    let meta = CheckpointMeta::read(vfs, dir)?;
    verify_files(vfs, dir, &meta)?;
    Ok(CheckpointInfo {
        dir: dir.to_path_buf(),
        meta,
    })
}

/// Checks the files in `dir` against `meta` (which need not be written yet).
pub fn verify_files(vfs: &dyn Vfs, dir: &Path, meta: &CheckpointMeta) -> Result<()> {
    let mut tables = BTreeSet::new();
    for f in &meta.files {
        let path = dir.join(&f.name);
        if !vfs.exists(&path)? {
            return Err(Error::corruption(&path, 0, "checkpoint file is missing"));
        }
        let content = vfs.read_all(&path)?;
        if content.len() as u64 != f.size {
            return Err(Error::corruption(
                &path,
                0,
                format!(
                    "file is {} bytes, the checkpoint lists {}",
                    content.len(),
                    f.size
                ),
            ));
        }
        if crc32fast::hash(&content) != f.crc32 {
            return Err(Error::corruption(
                &path,
                0,
                "file checksum differs from the checkpoint's",
            ));
        }
        if let FileKind::Table(n) = classify(&f.name) {
            Table::open(vfs, &path)?.verify()?;
            tables.insert(n);
        }
    }
    let current = dir.join(crate::filenames::CURRENT);
    let Some((_, state)) = manifest::replay(vfs, dir)? else {
        return Err(Error::corruption(&current, 0, "checkpoint has no CURRENT"));
    };
    let listed: BTreeSet<u64> = state.files.keys().map(|(_, n)| *n).collect();
    if listed != tables {
        let odd = listed
            .symmetric_difference(&tables)
            .next()
            .copied()
            .unwrap_or(0);
        return Err(Error::corruption(
            dir.join(table_name(odd)),
            0,
            "manifest and checkpoint list different tables",
        ));
    }
    if index_of(state.flushed_seq) != meta.log_index {
        return Err(Error::corruption(
            &current,
            0,
            format!(
                "manifest covers index {}, the checkpoint says {}",
                index_of(state.flushed_seq),
                meta.log_index
            ),
        ));
    }
    Ok(())
}
