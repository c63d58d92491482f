//! A version: the immutable set of live tables, by level.
//!
//! Level 0 holds flushed memtables, which may overlap; they are kept oldest first and read
//! newest first. Levels 1 and up hold tables with disjoint key ranges sorted by smallest key,
//! so a lookup reads at most one table per level. A new version is made for every change; old
//! ones stay valid for readers that still hold them.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::entry::Entry;
use crate::error::Result;
use crate::ikey::IKey;
use crate::manifest::FileDesc;
use crate::memtable::Lookup;
use crate::sstable::{Table, TableBuilder, TableGet};
use crate::vfs::VfsRef;

/// Number of levels.
pub const NUM_LEVELS: usize = 7;

/// A live table and what the manifest knows of it.
///
/// Once a compaction's edit dropping the table is durable, the table is marked obsolete; its
/// file is deleted when the last version (and so the last reader) holding it lets go.
#[derive(Debug)]
pub struct FileMeta {
    /// The manifest's description.
    pub desc: FileDesc,
    /// The open table.
    pub table: Arc<Table>,
    obsolete: AtomicBool,
    vfs: VfsRef,
}

impl Drop for FileMeta {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // A failure leaves an orphan that the next open removes.
            if let Err(e) = self.vfs.remove(self.table.path()) {
                tracing::warn!(error = %e, "could not delete an obsolete table");
            }
        }
    }
}

impl FileMeta {
    /// A live table.
    pub fn new(desc: FileDesc, table: Arc<Table>, vfs: VfsRef) -> Self {
        FileMeta {
            desc,
            table,
            obsolete: AtomicBool::new(false),
            vfs,
        }
    }

    /// The same table described at another level (a trivial move keeps the file).
    pub fn moved_to(&self, level: u8) -> Self {
        let mut desc = self.desc.clone();
        desc.level = level;
        FileMeta::new(desc, self.table.clone(), self.vfs.clone())
    }

    /// Marks the file for deletion once nothing holds it. Call only after the manifest edit
    /// that removes it is durable.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// Smallest user key in the table.
    pub fn smallest_user_key(&self) -> &[u8] {
        IKey::from_bytes(&self.desc.smallest).map_or(&[], IKey::user_key)
    }

    /// Largest user key in the table.
    pub fn largest_user_key(&self) -> &[u8] {
        IKey::from_bytes(&self.desc.largest).map_or(&[], IKey::user_key)
    }

    fn may_hold(&self, user_key: &[u8]) -> bool {
        self.smallest_user_key() <= user_key && user_key <= self.largest_user_key()
    }

    fn overlaps(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
        let below_upper = match upper {
            Bound::Included(u) => self.smallest_user_key() <= u,
            Bound::Excluded(u) => self.smallest_user_key() < u,
            Bound::Unbounded => true,
        };
        let above_lower = match lower {
            Bound::Included(l) => self.largest_user_key() >= l,
            Bound::Excluded(l) => self.largest_user_key() > l,
            Bound::Unbounded => true,
        };
        below_upper && above_lower
    }
}

/// The deepest overlap among `files`' key ranges (see [`Version::level0_runs`]).
fn level0_runs(files: &[Arc<FileMeta>]) -> usize {
    // Sweep the range ends in key order; at equal keys a range opens before another closes,
    // as ranges include both ends.
    let mut ends: Vec<(&[u8], bool)> = Vec::with_capacity(files.len() * 2);
    for f in files {
        ends.push((f.smallest_user_key(), false));
        ends.push((f.largest_user_key(), true));
    }
    ends.sort_unstable();
    let (mut open, mut deepest) = (0usize, 0usize);
    for (_, closes) in ends {
        if closes {
            open = open.saturating_sub(1);
        } else {
            open += 1;
            deepest = deepest.max(open);
        }
    }
    deepest.max(files.len().div_ceil(LEVEL0_TABLES_PER_RUN))
}

/// Finishes the table `builder` writes at `path` and opens it: the table, and its manifest
/// description as file `number` of `level`.
pub(crate) fn finish_table(
    vfs: &VfsRef,
    path: &std::path::Path,
    level: u8,
    number: u64,
    builder: TableBuilder<'_>,
) -> Result<(FileDesc, Arc<Table>)> {
    let (props, size) = builder.finish()?;
    let table = Arc::new(Table::open(vfs.as_ref(), path)?);
    let desc = FileDesc {
        level,
        number,
        size,
        entries: props.entries,
        smallest: props.smallest,
        largest: props.largest,
    };
    Ok((desc, table))
}

/// Counters a lookup updates.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Tables skipped because the bloom filter ruled the key out.
    pub bloom_useful: AtomicU64,
    /// Tables the filter let through that did not hold the key.
    pub bloom_false_positive: AtomicU64,
}

/// The live tables.
#[derive(Debug, Clone, Default)]
pub struct Version {
    /// Tables per level.
    pub levels: [Vec<Arc<FileMeta>>; NUM_LEVELS],
    level0_runs: usize,
}

/// Level-0 tables beyond this many count as one more run even when their key ranges are
/// disjoint, so that level 0 is compacted (often by moving tables down whole) before its
/// table count grows without bound.
pub const LEVEL0_TABLES_PER_RUN: usize = 16;

impl Version {
    /// Builds a version from the tables of each level (sorted here).
    pub fn from_levels(mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS]) -> Version {
        levels[0].sort_by_key(|f| f.desc.number);
        for level in levels.iter_mut().skip(1) {
            level.sort_by(|a, b| a.smallest_user_key().cmp(b.smallest_user_key()));
        }
        let level0_runs = level0_runs(&levels[0]);
        Version {
            levels,
            level0_runs,
        }
    }

    /// How many level-0 tables a lookup may have to read for one key: the most tables whose
    /// key ranges share a key (a flush that splits its output into disjoint tables adds one
    /// run, not one per table), and at least one per [`LEVEL0_TABLES_PER_RUN`] tables.
    /// Compaction scores and write back-pressure count level 0 in these runs.
    pub fn level0_runs(&self) -> usize {
        self.level0_runs
    }

    /// The newest version of `user_key` visible at `snapshot` in the tables.
    pub fn get(
        &self,
        user_key: &[u8],
        snapshot: u64,
        counters: &ReadCounters,
    ) -> Result<Option<Lookup>> {
        let probe = |f: &FileMeta| -> Result<Option<Lookup>> {
            Ok(match f.table.get(user_key, snapshot)? {
                TableGet::FilteredOut => {
                    counters.bloom_useful.fetch_add(1, Ordering::Relaxed);
                    None
                }
                TableGet::NotFound => {
                    counters
                        .bloom_false_positive
                        .fetch_add(1, Ordering::Relaxed);
                    None
                }
                TableGet::Found(l) => Some(l),
            })
        };
        for f in self.levels[0].iter().rev().filter(|f| f.may_hold(user_key)) {
            if let Some(l) = probe(f)? {
                return Ok(Some(l));
            }
        }
        for level in &self.levels[1..] {
            let i = level.partition_point(|f| f.largest_user_key() < user_key);
            if let Some(f) = level.get(i).filter(|f| f.may_hold(user_key)) {
                if let Some(l) = probe(f)? {
                    return Ok(Some(l));
                }
            }
        }
        Ok(None)
    }

    /// Iterators over every table that may hold keys within the bounds.
    pub fn iters(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> Vec<Box<dyn Iterator<Item = Result<Entry>> + Send>> {
        self.levels
            .iter()
            .flatten()
            .filter(|f| f.overlaps(lower, upper))
            .map(|f| Box::new(f.table.iter(lower, upper)) as Box<dyn Iterator<Item = _> + Send>)
            .collect()
    }

    /// Number of tables and their total size, per level.
    pub fn level_summary(&self) -> [(usize, u64); NUM_LEVELS] {
        let mut out = [(0, 0); NUM_LEVELS];
        for (i, level) in self.levels.iter().enumerate() {
            out[i] = (level.len(), level.iter().map(|f| f.desc.size).sum());
        }
        out
    }
}
