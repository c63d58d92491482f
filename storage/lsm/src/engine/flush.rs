//! The flush thread: writes frozen memtables to level-0 tables, oldest first.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::stats::Counters;
use super::{Inner, View};
use crate::error::Result;
use crate::filenames::table_name;
use crate::ikey::snapshot_at;
use crate::manifest::{FileDesc, VersionEdit};
use crate::memtable::Memtable;
use crate::sstable::{Table, TableBuilder};
use crate::version::FileMeta;

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

/// Writes one frozen memtable to a table, records it in the manifest, and swaps it out of the
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
        let number = inner.versions.lock().new_file_number();
        let path = inner.dir.join(table_name(number));
        let mut builder = TableBuilder::new(inner.vfs.as_ref(), &path, inner.opts.table.clone())?;
        let mut add = || -> Result<()> {
            for e in mem.map_iter() {
                builder.add(e.key().as_ikey(), e.value())?;
            }
            Ok(())
        };
        if let Err(e) = add() {
            builder.abandon();
            return Err(e);
        }
        let (props, size) = builder.finish()?;
        let table = Arc::new(Table::open(inner.vfs.as_ref(), &path)?);
        let desc = FileDesc {
            level: 0,
            number,
            size,
            entries: props.entries,
            smallest: props.smallest,
            largest: props.largest,
        };
        edit.added.push(desc.clone());
        added.push(Arc::new(FileMeta::new(desc, table, inner.vfs.clone())));
        Counters::add(&inner.counters.flushed_bytes, size);
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
