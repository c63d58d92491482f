//! Recovering the WAL's segments at open.

use std::collections::VecDeque;
use std::path::Path;

use super::flusher::Shared;
use super::meta::WalMeta;
use super::segment::{self, Segment};
use super::stats;
use crate::error::{Error, Result};
use crate::vfs::VfsRef;

/// Scans the segments found at open: verifies them, cuts a torn tail of the last one, checks
/// that they continue each other and the purge point, and drops fully purged ones.
pub(super) fn recover_segments(
    vfs: &VfsRef,
    dir: &Path,
    names: &[(u64, String)],
    meta: &WalMeta,
    shared: &Shared,
) -> Result<VecDeque<Segment>> {
    let purged = meta.last_purged.map(|id| id.index);
    let mut segments: VecDeque<Segment> = VecDeque::new();
    for (i, (first_index, name)) in names.iter().enumerate() {
        let path = dir.join(name);
        let is_last = i + 1 == names.len();
        let buf = vfs.read_all(&path)?;
        let scan = segment::scan(&path, &buf, *first_index, is_last)?;
        let file = vfs.open(&path)?;
        if let Some((offset, reason)) = scan.torn {
            tracing::warn!(
                file = %path.display(),
                offset,
                dropped_bytes = buf.len() as u64 - offset,
                reason,
                "cutting a torn write off the end of the log"
            );
            file.set_len(scan.valid_len)?;
            file.sync_data()?;
            stats::Counters::add(&shared.counters.torn_tails_repaired, 1);
        }
        if let Some(prev) = segments.back() {
            if prev.next_index() != *first_index {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "segment starts at index {first_index} but the previous one ends before {}",
                        prev.next_index()
                    ),
                ));
            }
        }
        segments.push_back(Segment {
            first_index: *first_index,
            path,
            file,
            entries: scan.entries,
            size: scan.valid_len,
        });
    }
    if let Some(p) = purged {
        while segments.front().is_some_and(|s| s.fully_purged(p)) {
            if let Some(seg) = segments.pop_front() {
                vfs.remove(&seg.path)?;
            }
        }
        if let Some(first) = segments.front() {
            if first.first_index > p + 1 {
                return Err(Error::corruption(
                    &first.path,
                    0,
                    format!(
                        "entries {}..{} are missing after the purge point",
                        p + 1,
                        first.first_index
                    ),
                ));
            }
        }
    }
    Ok(segments)
}
