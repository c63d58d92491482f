//! The flush thread: writes frozen memtables to level-0 tables, oldest first (one table per
//! partition of keys, see [`EngineConfig::table_partition_prefix`]).
//!
//! [`EngineConfig::table_partition_prefix`]: crate::EngineConfig::table_partition_prefix

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::stats::Counters;
use super::{Inner, View};
use crate::compaction::cuts::Cuts;
use crate::error::{Error, Result};
use crate::filenames::table_name;
use crate::ikey::snapshot_at;
use crate::manifest::{FileDesc, VersionEdit};
use crate::memtable::Memtable;
use crate::sstable::{Table, TableBuilder};
use crate::version::{finish_table, FileMeta};

/// Flushes whatever is queued each time it is woken, until the engine shuts down (queued
/// memtables are still flushed then).
pub(super) fn run(inner: Arc<Inner>) {
    while inner.flush_wakeup.wait() {
        while inner.failure().is_none() {
            let Some(oldest) = inner.view().immutables.first().cloned() else {
                break;
            };
            if let Err(e) = flush_one(&inner, &oldest) {
                tracing::error!(error = %e, "memtable flush failed; the engine stops taking writes");
                inner.fail(e);
            }
        }
    }
}

/// Writes one frozen memtable to tables, records it in the manifest, and swaps it out of the
/// read path.
fn flush_one(inner: &Inner, mem: &Arc<Memtable>) -> Result<()> {
    let max_index = mem.max_index();
    let span = tracing::info_span!("flush", max_index, entries = mem.len());
    let _enter = span.enter();
    let mut added = Vec::new();
    let mut edit = VersionEdit {
        flushed_seq: Some(snapshot_at(max_index)),
        ..VersionEdit::default()
    };
    if !mem.is_empty() {
        let tables = match write_tables(inner, mem) {
            Ok(tables) => tables,
            Err((e, written)) => {
                for path in written {
                    let _ = inner.vfs.remove(&path);
                }
                return Err(e);
            }
        };
        for (desc, table) in tables {
            Counters::add(&inner.counters.flushed_bytes, desc.size);
            edit.added.push(desc.clone());
            added.push(Arc::new(FileMeta::new(desc, table, inner.vfs.clone())));
        }
    }
    {
        // Publish under the version-set lock so versions reach readers in order.
        let mut versions = inner.versions.lock();
        let version = versions.log_and_apply(edit, added)?;
        let mut view = inner.view.write();
        let immutables = view
            .immutables
            .iter()
            .filter(|m| !Arc::ptr_eq(m, mem))
            .cloned()
            .collect();
        *view = Arc::new(View {
            active: view.active.clone(),
            immutables,
            version,
        });
    }
    inner.flushed_index.fetch_max(max_index, Ordering::Release);
    Counters::add(&inner.counters.flushes, 1);
    inner.progress.notify(usize::MAX);
    inner.compact_wakeup.raise();
    tracing::debug!("memtable flushed");
    Ok(())
}

/// Writes `mem` to level-0 tables, a new one wherever its keys change partition. On failure,
/// the paths of the tables already written (for the caller to remove).
#[allow(clippy::type_complexity)]
fn write_tables(
    inner: &Inner,
    mem: &Memtable,
) -> std::result::Result<Vec<(FileDesc, Arc<Table>)>, (Error, Vec<PathBuf>)> {
    let mut done: Vec<(FileDesc, Arc<Table>)> = Vec::new();
    let paths = |done: &[(FileDesc, Arc<Table>)]| -> Vec<PathBuf> {
        done.iter().map(|(_, t)| t.path().to_path_buf()).collect()
    };
    let mut cuts = Cuts::new(inner.opts.table_partition_prefix, Vec::new());
    let mut current: Option<(u64, PathBuf, TableBuilder<'_>)> = None;
    for e in mem.map_iter() {
        let ikey = e.key().as_ikey();
        if cuts.before(ikey.user_key()) {
            if let Some((number, path, builder)) = current.take() {
                match finish_table(&inner.vfs, &path, 0, number, builder) {
                    Ok(table) => done.push(table),
                    Err(e) => return Err((e, paths(&done))),
                }
            }
        }
        if current.is_none() {
            let number = inner.versions.lock().new_file_number();
            let path = inner.dir.join(table_name(number));
            match TableBuilder::new(inner.vfs.as_ref(), &path, inner.opts.table.clone()) {
                Ok(builder) => current = Some((number, path, builder)),
                Err(e) => return Err((e, paths(&done))),
            }
        }
        if let Some((_, _, builder)) = current.as_mut() {
            if let Err(e) = builder.add(ikey, e.value()) {
                if let Some((_, _, builder)) = current.take() {
                    builder.abandon();
                }
                return Err((e, paths(&done)));
            }
        }
    }
    if let Some((number, path, builder)) = current.take() {
        match finish_table(&inner.vfs, &path, 0, number, builder) {
            Ok(table) => done.push(table),
            Err(e) => return Err((e, paths(&done))),
        }
    }
    Ok(done)
}
