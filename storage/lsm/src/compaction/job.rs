//! Running one compaction.
//!
//! The input tables are merged in internal-key order. Only the newest version of each user key
//! survives (every reader's snapshot sees all flushed data, so older versions are unreachable),
//! and a delete is dropped too when no deeper level holds the key. Output is split into tables
//! of about the target size, and where [`cuts`](super::cuts) says (partitions, and around the
//! tables of the output level that stay where they are). Files the pick moves down whole
//! change level in the same edit. The edit replacing inputs with outputs is made durable in the
//! manifest before the new version is installed, and only then are the inputs marked obsolete.

use std::sync::Arc;

use bytes::Bytes;

use super::cuts::Cuts;
use super::picker::Pick;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::filenames::table_name;
use crate::ikey::{self, IKey, ValueKind};
use crate::manifest::{FileDesc, VersionEdit};
use crate::merge::{MergeIter, Source};
use crate::sstable::{Table, TableBuilder, TableConfig};
use crate::version::{finish_table, FileMeta, Version, NUM_LEVELS};
use crate::version_set::VersionSet;
use crate::vfs::VfsRef;

/// What a compaction did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Bytes of input tables read.
    pub bytes_read: u64,
    /// Bytes of output tables written.
    pub bytes_written: u64,
    /// Whether the file was moved down without being rewritten.
    pub trivial_move: bool,
}

/// What a job needs from the engine.
pub struct Context<'a> {
    /// File system.
    pub vfs: &'a VfsRef,
    /// Engine directory.
    pub dir: &'a std::path::Path,
    /// Layout of output tables.
    pub table: &'a TableConfig,
    /// Output tables are cut at about this size.
    pub target_file_bytes: u64,
    /// Output tables never mix keys that differ in their first this many bytes.
    pub partition_prefix: usize,
    /// The version set (locked briefly for file numbers and to publish).
    pub versions: &'a parking_lot::Mutex<VersionSet>,
    /// Installs a newly published version for readers (called with the version set locked).
    pub publish: &'a (dyn Fn(Arc<Version>) + Sync),
    /// True once the engine is shutting down: the job gives up between tables.
    pub stopping: &'a (dyn Fn() -> bool + Sync),
}

/// Answers "may a deeper level hold this key?" for keys asked in ascending order.
struct Deeper<'a> {
    levels: Vec<&'a [Arc<FileMeta>]>,
    cursors: Vec<usize>,
}

impl<'a> Deeper<'a> {
    fn new(version: &'a Version, output_level: usize) -> Self {
        let levels: Vec<_> = version.levels[output_level + 1..NUM_LEVELS]
            .iter()
            .map(Vec::as_slice)
            .collect();
        let cursors = vec![0; levels.len()];
        Deeper { levels, cursors }
    }

    fn may_hold(&mut self, key: &[u8]) -> bool {
        for (files, cursor) in self.levels.iter().zip(self.cursors.iter_mut()) {
            while *cursor < files.len() && files[*cursor].largest_user_key() < key {
                *cursor += 1;
            }
            if files
                .get(*cursor)
                .is_some_and(|f| f.smallest_user_key() <= key)
            {
                return true;
            }
        }
        false
    }
}

struct Output<'a> {
    builder: TableBuilder<'a>,
    number: u64,
}

/// Runs `pick` against `version` (the version it was picked from).
pub fn run(ctx: &Context<'_>, pick: &Pick, version: &Version) -> Result<Outcome> {
    let out_level = pick.level + 1;
    if pick.is_trivial_move() {
        let file = &pick.inputs[0];
        let moved = Arc::new(file.moved_to(out_level as u8));
        let edit = VersionEdit {
            removed: vec![(pick.level as u8, file.desc.number)],
            added: vec![moved.desc.clone()],
            ..VersionEdit::default()
        };
        let mut vs = ctx.versions.lock();
        let v = vs.log_and_apply(edit, vec![moved])?;
        (ctx.publish)(v);
        return Ok(Outcome {
            trivial_move: true,
            ..Outcome::default()
        });
    }

    let moved: Vec<Arc<FileMeta>> = pick
        .moves
        .iter()
        .map(|f| Arc::new(f.moved_to(out_level as u8)))
        .collect();
    // The output level's tables this compaction does not rewrite, and those it moves there.
    let merged: std::collections::HashSet<u64> =
        pick.next_inputs.iter().map(|f| f.desc.number).collect();
    let fences = version.levels[out_level]
        .iter()
        .filter(|f| !merged.contains(&f.desc.number))
        .chain(moved.iter())
        .map(|f| f.smallest_user_key().to_vec())
        .collect();
    let mut cuts = Cuts::new(ctx.partition_prefix, fences);
    let sources: Vec<Source> = pick
        .merged_files()
        .map(|f| {
            Box::new(
                f.table
                    .iter(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            ) as Source
        })
        .collect();
    let mut deeper = Deeper::new(version, out_level);
    let mut outputs: Vec<(u64, FileDesc, Arc<Table>)> = Vec::new();
    let mut current: Option<Output<'_>> = None;
    let mut last_key: Option<Bytes> = None;
    let mut ikey_buf = Vec::new();

    let result = (|| -> Result<()> {
        for (n, entry) in MergeIter::new(sources).enumerate() {
            let Entry {
                key,
                seq,
                kind,
                value,
            } = entry?;
            if n % 1024 == 0 && (ctx.stopping)() {
                return Err(Error::Closed("engine"));
            }
            if last_key.as_ref() == Some(&key) {
                continue;
            }
            last_key = Some(key.clone());
            if kind == ValueKind::Delete && !deeper.may_hold(&key) {
                continue;
            }
            if cuts.before(&key) {
                if let Some(done) = current.take() {
                    outputs.push(finish(ctx, done, out_level)?);
                }
            }
            let out = match current.as_mut() {
                Some(o) => o,
                None => {
                    let number = ctx.versions.lock().new_file_number();
                    let path = ctx.dir.join(table_name(number));
                    let builder = TableBuilder::new(ctx.vfs.as_ref(), &path, ctx.table.clone())?;
                    current.insert(Output { builder, number })
                }
            };
            ikey_buf.clear();
            ikey::encode(&mut ikey_buf, &key, seq, kind);
            let ik = IKey::from_bytes(&ikey_buf).ok_or(Error::Closed("engine"))?;
            out.builder.add(ik, &value)?;
            if out.builder.estimated_size() >= ctx.target_file_bytes {
                cuts.finished();
                if let Some(done) = current.take() {
                    outputs.push(finish(ctx, done, out_level)?);
                }
            }
        }
        if let Some(done) = current.take() {
            outputs.push(finish(ctx, done, out_level)?);
        }
        Ok(())
    })();
    if let Err(e) = result {
        if let Some(o) = current.take() {
            o.builder.abandon();
        }
        for (_, _, table) in &outputs {
            let _ = ctx.vfs.remove(table.path());
        }
        return Err(e);
    }

    let bytes_written = outputs.iter().map(|(_, d, _)| d.size).sum();
    let added: Vec<Arc<FileMeta>> = outputs
        .into_iter()
        .map(|(_, desc, table)| Arc::new(FileMeta::new(desc, table, ctx.vfs.clone())))
        .chain(moved)
        .collect();
    let edit = VersionEdit {
        removed: pick
            .inputs
            .iter()
            .chain(pick.moves.iter())
            .map(|f| (pick.level as u8, f.desc.number))
            .chain(
                pick.next_inputs
                    .iter()
                    .map(|f| (out_level as u8, f.desc.number)),
            )
            .collect(),
        added: added.iter().map(|f| f.desc.clone()).collect(),
        ..VersionEdit::default()
    };
    {
        let mut vs = ctx.versions.lock();
        let v = vs.log_and_apply(edit, added)?;
        (ctx.publish)(v);
    }
    for f in pick.merged_files() {
        f.mark_obsolete();
    }
    Ok(Outcome {
        bytes_read: pick.input_bytes(),
        bytes_written,
        trivial_move: pick.inputs.is_empty() && pick.next_inputs.is_empty(),
    })
}

fn finish(ctx: &Context<'_>, out: Output<'_>, level: usize) -> Result<(u64, FileDesc, Arc<Table>)> {
    let path = ctx.dir.join(table_name(out.number));
    let (desc, table) = finish_table(ctx.vfs, &path, level as u8, out.number, out.builder)?;
    Ok((out.number, desc, table))
}
