//! Choosing the next compaction.
//!
//! Every level but the last has a score: level 0 its runs ([`Version::level0_runs`]) over the
//! trigger (4), level `n >= 1` its bytes over its target (`level1_bytes * multiplier^(n-1)`).
//! The level with the highest score of at least 1 is compacted into the next one:
//!
//! * from level 0, every level-0 file goes (they may overlap, and an older overlapping file
//!   must never be left above newer data). A file of at least an eighth of the target file
//!   size whose key range overlaps no other level-0 file and no level-1 file is moved down
//!   whole; the others are merged with the level-1 files that each of them overlaps (not every
//!   level-1 file within their combined range), and a small level-1 file just before a merged
//!   file that overlaps none, in the same partition, is merged too, so that data appended in
//!   key order in small pieces gathers into tables of a useful size;
//! * from level `n >= 1`, one file: among the next few files after the level's compaction
//!   pointer (which rotates through the key space), the one whose key range overlaps the fewest
//!   bytes of level `n + 1`, with those overlapping files. A file that overlaps nothing is moved
//!   down without being rewritten.
//!
//! Files already in a running compaction are never picked twice.

use std::collections::HashSet;
use std::sync::Arc;

use super::cuts;
use crate::version::{FileMeta, Version, NUM_LEVELS};

/// Files after the compaction pointer considered for the least-overlap choice.
const WINDOW: usize = 8;

/// How levels are sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelShape {
    /// Level-0 file count that triggers a compaction.
    pub l0_trigger: usize,
    /// Target size of level 1.
    pub level1_bytes: u64,
    /// Each level's target is this many times the one above.
    pub multiplier: u64,
    /// Compaction cuts its output into tables of about this size.
    pub target_file_bytes: u64,
    /// Tables never mix keys that differ in their first this many bytes (0: no partitions).
    pub partition_prefix: usize,
}

impl LevelShape {
    /// The smallest level-0 file moved down whole: smaller ones are merged, so that level 1
    /// does not fill up with tiny tables.
    pub fn min_move_bytes(&self) -> u64 {
        self.target_file_bytes / 8
    }

    /// A level-1 table smaller than this, just before a merged level-0 file of its partition,
    /// is merged with it.
    pub fn small_table_bytes(&self) -> u64 {
        self.target_file_bytes / 2
    }

    /// Target bytes of level `n >= 1`.
    pub fn target(&self, level: usize) -> u64 {
        let mut t = self.level1_bytes.max(1);
        for _ in 1..level {
            t = t.saturating_mul(self.multiplier.max(2));
        }
        t
    }
}

/// One compaction to run.
#[derive(Debug, Clone)]
pub struct Pick {
    /// The level compacted from; outputs go to `level + 1`.
    pub level: usize,
    /// Files taken from `level`.
    pub inputs: Vec<Arc<FileMeta>>,
    /// Files of `level + 1` merged with them.
    pub next_inputs: Vec<Arc<FileMeta>>,
    /// Files of `level` moved to `level + 1` whole, without being rewritten.
    pub moves: Vec<Arc<FileMeta>>,
}

impl Pick {
    /// A single file with nothing below it to merge: it can move down as it is.
    pub fn is_trivial_move(&self) -> bool {
        self.level > 0 && self.inputs.len() == 1 && self.next_inputs.is_empty()
    }

    /// Every file involved (merged or moved).
    pub fn all_files(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.merged_files().chain(self.moves.iter())
    }

    /// The files merged (rewritten).
    pub fn merged_files(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.inputs.iter().chain(self.next_inputs.iter())
    }

    /// Bytes read by this compaction.
    pub fn input_bytes(&self) -> u64 {
        self.merged_files().map(|f| f.desc.size).sum()
    }
}

/// Score of every level that can be compacted (the last level cannot).
pub fn scores(version: &Version, shape: &LevelShape) -> [f64; NUM_LEVELS - 1] {
    let mut out = [0.0; NUM_LEVELS - 1];
    out[0] = version.level0_runs() as f64 / shape.l0_trigger.max(1) as f64;
    for (level, score) in out.iter_mut().enumerate().skip(1) {
        let bytes: u64 = version.levels[level].iter().map(|f| f.desc.size).sum();
        *score = bytes as f64 / shape.target(level) as f64;
    }
    out
}

/// The user-key range covered by `files`.
fn range_of<'a>(files: impl IntoIterator<Item = &'a Arc<FileMeta>>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut range: Option<(Vec<u8>, Vec<u8>)> = None;
    for f in files {
        let (lo, hi) = (f.smallest_user_key(), f.largest_user_key());
        range = Some(match range {
            None => (lo.to_vec(), hi.to_vec()),
            Some((a, b)) => (a.min(lo.to_vec()), b.max(hi.to_vec())),
        });
    }
    range
}

/// Files of `level` overlapping `[lo, hi]`.
pub fn overlapping(version: &Version, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<FileMeta>> {
    version.levels[level]
        .iter()
        .filter(|f| f.smallest_user_key() <= hi && f.largest_user_key() >= lo)
        .cloned()
        .collect()
}

fn any_busy(files: &[Arc<FileMeta>], busy: &HashSet<u64>) -> bool {
    files.iter().any(|f| busy.contains(&f.desc.number))
}

fn overlap(a: &FileMeta, b: &FileMeta) -> bool {
    a.smallest_user_key() <= b.largest_user_key() && b.smallest_user_key() <= a.largest_user_key()
}

/// Level 0 into level 1: every level-0 file, moved down whole or merged with the level-1 files
/// it overlaps (see the module's documentation).
fn pick_level0(version: &Version, shape: &LevelShape, busy: &HashSet<u64>) -> Option<Pick> {
    let files = &version.levels[0];
    if files.is_empty() || any_busy(files, busy) {
        return None;
    }
    let level1 = &version.levels[1];
    let mut inputs = Vec::new();
    let mut moves = Vec::new();
    let mut next_inputs: Vec<Arc<FileMeta>> = Vec::new();
    let mut add_next = |f: &Arc<FileMeta>| {
        if !next_inputs.iter().any(|n| n.desc.number == f.desc.number) {
            next_inputs.push(f.clone());
        }
    };
    for f in files {
        let below = overlapping(version, 1, f.smallest_user_key(), f.largest_user_key());
        let alone = files
            .iter()
            .all(|g| g.desc.number == f.desc.number || !overlap(f, g));
        if alone && below.is_empty() && f.desc.size >= shape.min_move_bytes() {
            moves.push(f.clone());
            continue;
        }
        if below.is_empty() {
            // Appending in key order: grow the small table just before this one.
            let before = level1.partition_point(|t| t.largest_user_key() < f.smallest_user_key());
            if let Some(prev) = before.checked_sub(1).and_then(|i| level1.get(i)) {
                if prev.desc.size < shape.small_table_bytes()
                    && !busy.contains(&prev.desc.number)
                    && cuts::same_partition(
                        prev.largest_user_key(),
                        f.smallest_user_key(),
                        shape.partition_prefix,
                    )
                {
                    add_next(prev);
                }
            }
        }
        for b in &below {
            add_next(b);
        }
        inputs.push(f.clone());
    }
    if any_busy(&next_inputs, busy) {
        return None;
    }
    next_inputs.sort_by(|a, b| a.smallest_user_key().cmp(b.smallest_user_key()));
    Some(Pick {
        level: 0,
        inputs,
        next_inputs,
        moves,
    })
}

/// One file of `level >= 1` into the next: least overlap within a window after the pointer.
fn pick_deeper(
    version: &Version,
    level: usize,
    busy: &HashSet<u64>,
    pointer: &mut Vec<u8>,
) -> Option<Pick> {
    let files = &version.levels[level];
    if files.is_empty() {
        return None;
    }
    let start = files.partition_point(|f| f.smallest_user_key() <= pointer.as_slice());
    let start = if start == files.len() { 0 } else { start };
    let mut best: Option<(f64, Pick)> = None;
    for f in files
        .iter()
        .cycle()
        .skip(start)
        .take(WINDOW.min(files.len()))
    {
        if busy.contains(&f.desc.number) {
            continue;
        }
        let next_inputs = overlapping(
            version,
            level + 1,
            f.smallest_user_key(),
            f.largest_user_key(),
        );
        if any_busy(&next_inputs, busy) {
            continue;
        }
        let overlap: u64 = next_inputs.iter().map(|n| n.desc.size).sum();
        let ratio = overlap as f64 / f.desc.size.max(1) as f64;
        if best.as_ref().is_none_or(|(r, _)| ratio < *r) {
            best = Some((
                ratio,
                Pick {
                    level,
                    inputs: vec![f.clone()],
                    next_inputs,
                    moves: Vec::new(),
                },
            ));
        }
    }
    let (_, pick) = best?;
    *pointer = pick.inputs[0].largest_user_key().to_vec();
    Some(pick)
}

/// The next compaction, if any level needs one. `pointers` holds each level's rotating
/// compaction pointer (the largest key of the last file compacted from it).
pub fn pick(
    version: &Version,
    shape: &LevelShape,
    busy: &HashSet<u64>,
    pointers: &mut [Vec<u8>; NUM_LEVELS],
) -> Option<Pick> {
    let scores = scores(version, shape);
    let mut order: Vec<usize> = (0..NUM_LEVELS - 1).filter(|&l| scores[l] >= 1.0).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    order.into_iter().find_map(|level| match level {
        0 => pick_level0(version, shape, busy),
        _ => pick_deeper(version, level, busy, &mut pointers[level]),
    })
}

/// A compaction that moves all of `level` into `level + 1`, whatever the scores (for manual
/// compaction).
pub fn pick_whole_level(
    version: &Version,
    shape: &LevelShape,
    level: usize,
    busy: &HashSet<u64>,
) -> Option<Pick> {
    if level == 0 {
        return pick_level0(version, shape, busy);
    }
    let inputs = version.levels[level].clone();
    if inputs.is_empty() || any_busy(&inputs, busy) {
        return None;
    }
    let (lo, hi) = range_of(&inputs)?;
    let next_inputs = overlapping(version, level + 1, &lo, &hi);
    if any_busy(&next_inputs, busy) {
        return None;
    }
    Some(Pick {
        level,
        inputs,
        next_inputs,
        moves: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikey::{InternalKey, ValueKind};
    use crate::sstable::{TableBuilder, TableConfig};
    use crate::version::finish_table;
    use crate::vfs::{SimVfs, Vfs};
    use std::path::Path;

    /// A real table holding `keys`, placed at `level`, padded to about `size` bytes.
    fn table(vfs: &SimVfs, level: u8, number: u64, keys: &[&str], size: usize) -> Arc<FileMeta> {
        let path = Path::new("/t").join(format!("{number}.sst"));
        let mut b = TableBuilder::new(vfs, &path, TableConfig::default()).unwrap();
        let value = vec![7u8; size / keys.len().max(1)];
        for k in keys {
            let ik = InternalKey::new(k.as_bytes(), 1, ValueKind::Put);
            b.add(ik.as_ikey(), &value).unwrap();
        }
        let (desc, table) = finish_table(&vfs.shared(), &path, level, number, b).unwrap();
        Arc::new(FileMeta::new(desc, table, vfs.shared()))
    }

    fn shape() -> LevelShape {
        LevelShape {
            l0_trigger: 4,
            level1_bytes: 1000,
            multiplier: 10,
            target_file_bytes: 800,
            partition_prefix: 1,
        }
    }

    fn fixture() -> (SimVfs, Version) {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(Path::new("/t")).unwrap();
        let mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS] = Default::default();
        // Level 1: ten files "a".."j", 500 bytes each: 5000 bytes against a 1000-byte target.
        for (i, c) in ('a'..='j').enumerate() {
            let k = format!("{c}");
            levels[1].push(table(
                &vfs,
                1,
                10 + i as u64,
                &[&format!("{k}1"), &format!("{k}9")],
                500,
            ));
        }
        // Level 2: heavy overlap under "a".."c", light under "d", none elsewhere.
        levels[2].push(table(&vfs, 2, 40, &["a0", "c9"], 5000));
        levels[2].push(table(&vfs, 2, 41, &["d5", "d6"], 100));
        (vfs, Version::from_levels(levels))
    }

    #[test]
    fn the_fullest_level_goes_first() {
        let (_vfs, v) = fixture();
        let s = scores(&v, &shape());
        assert!(s[1] > 4.0, "{s:?}");
        let mut pointers: [Vec<u8>; NUM_LEVELS] = Default::default();
        let p = pick(&v, &shape(), &HashSet::new(), &mut pointers).unwrap();
        assert_eq!(p.level, 1);
    }

    #[test]
    fn least_overlap_within_the_window_and_the_pointer_rotates() {
        let (_vfs, v) = fixture();
        let busy = HashSet::new();
        let mut pointers: [Vec<u8>; NUM_LEVELS] = Default::default();
        let mut seen = Vec::new();
        for _ in 0..12 {
            let p = pick(&v, &shape(), &busy, &mut pointers).unwrap();
            assert_eq!(p.inputs.len(), 1);
            seen.push(p.inputs[0].smallest_user_key().to_vec());
        }
        // The heavily overlapped "a".."c" are avoided while lighter files are in the window,
        // and the choice keeps moving through the key space instead of sticking to the start.
        assert_ne!(seen[0], b"a1".to_vec());
        let distinct: HashSet<_> = seen.iter().collect();
        assert!(distinct.len() >= 5, "{seen:?}");
        assert!(
            seen.iter().any(|k| k.as_slice() > b"g".as_slice()),
            "{seen:?}"
        );
    }

    #[test]
    fn a_file_over_nothing_is_moved_and_busy_files_are_skipped() {
        let (_vfs, v) = fixture();
        let mut pointers: [Vec<u8>; NUM_LEVELS] = Default::default();
        pointers[1] = b"e".to_vec();
        let p = pick(&v, &shape(), &HashSet::new(), &mut pointers).unwrap();
        assert!(p.is_trivial_move(), "{p:?}");
        let busy: HashSet<u64> = v.levels[1].iter().map(|f| f.desc.number).collect();
        assert!(pick(&v, &shape(), &busy, &mut pointers).is_none());
    }

    #[test]
    fn level0_takes_every_file_and_what_it_overlaps() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(Path::new("/t")).unwrap();
        let mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS] = Default::default();
        for n in 0..4 {
            levels[0].push(table(&vfs, 0, n, &["m", "p"], 100));
        }
        levels[1].push(table(&vfs, 1, 10, &["a", "b"], 100));
        levels[1].push(table(&vfs, 1, 11, &["n", "o"], 100));
        let v = Version::from_levels(levels);
        let mut pointers: [Vec<u8>; NUM_LEVELS] = Default::default();
        let p = pick(&v, &shape(), &HashSet::new(), &mut pointers).unwrap();
        assert_eq!((p.level, p.inputs.len(), p.next_inputs.len()), (0, 4, 1));
        assert_eq!(p.next_inputs[0].desc.number, 11);
    }

    #[test]
    fn level0_moves_lone_files_and_merges_each_other_file_with_what_it_overlaps() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(Path::new("/t")).unwrap();
        let mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS] = Default::default();
        // Two flushes: "a" keys overlapping each other, "e" keys each in a range of their own.
        levels[0].push(table(&vfs, 0, 1, &["a1", "a5"], 400));
        levels[0].push(table(&vfs, 0, 2, &["e10", "e19"], 400));
        levels[0].push(table(&vfs, 0, 3, &["a3", "a7"], 400));
        levels[0].push(table(&vfs, 0, 4, &["e20", "e29"], 400));
        // Level 1: one table under "a", one between the "a" and "e" files, older "e" keys.
        levels[1].push(table(&vfs, 1, 10, &["a2", "a4"], 100));
        levels[1].push(table(&vfs, 1, 11, &["b", "c"], 100));
        levels[1].push(table(&vfs, 1, 12, &["e01", "e09"], 500));
        let v = Version::from_levels(levels);
        assert_eq!(v.level0_runs(), 2);
        let p = pick_level0(&v, &shape(), &HashSet::new()).unwrap();
        let numbers =
            |files: &[Arc<FileMeta>]| files.iter().map(|f| f.desc.number).collect::<Vec<_>>();
        assert_eq!(numbers(&p.inputs), [1, 3]);
        assert_eq!(
            numbers(&p.next_inputs),
            [10],
            "not every table within a1..a7's hull"
        );
        assert_eq!(numbers(&p.moves), [2, 4]);
        assert_eq!(p.all_files().count(), 5);
        assert_eq!(
            p.input_bytes(),
            p.merged_files().map(|f| f.desc.size).sum::<u64>()
        );
    }

    #[test]
    fn a_small_table_at_the_end_of_its_partition_gathers_small_pieces_after_it() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(Path::new("/t")).unwrap();
        let mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS] = Default::default();
        // Too small to move (under an eighth of the target): merged, with the small table of
        // its partition just before it.
        let shape = LevelShape {
            target_file_bytes: 16 << 10,
            ..shape()
        };
        levels[0].push(table(&vfs, 0, 1, &["c30", "c39"], 40));
        levels[0].push(table(&vfs, 0, 2, &["d30", "d39"], 40));
        levels[1].push(table(&vfs, 1, 10, &["c10", "c29"], 40));
        levels[1].push(table(&vfs, 1, 11, &["d00", "d29"], 40));
        let v = Version::from_levels(levels);
        let p = pick_level0(&v, &shape, &HashSet::new()).unwrap();
        let numbers: Vec<_> = p.next_inputs.iter().map(|f| f.desc.number).collect();
        assert_eq!(numbers, [10, 11]);
        assert!(p.moves.is_empty());
        // Not when that table is busy: the piece is merged alone.
        let busy: HashSet<u64> = [10].into();
        let p = pick_level0(&v, &shape, &busy).unwrap();
        let numbers: Vec<_> = p.next_inputs.iter().map(|f| f.desc.number).collect();
        assert_eq!(numbers, [11]);
    }

    #[test]
    fn level0_runs_count_overlaps_and_many_disjoint_tables() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(Path::new("/t")).unwrap();
        let run = |specs: &[(&str, &str)]| {
            let mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS] = Default::default();
            for (n, (lo, hi)) in specs.iter().enumerate() {
                levels[0].push(table(&vfs, 0, 100 + n as u64, &[lo, hi], 100));
            }
            Version::from_levels(levels).level0_runs()
        };
        assert_eq!(run(&[]), 0);
        assert_eq!(run(&[("a", "c"), ("d", "f")]), 1);
        // Ranges that only touch at one key still overlap there.
        assert_eq!(run(&[("a", "c"), ("c", "f"), ("b", "c")]), 3);
        assert_eq!(run(&[("a", "z"), ("b", "c"), ("d", "e"), ("f", "g")]), 2);
        let disjoint: Vec<(String, String)> = (0..17)
            .map(|i| (format!("k{i:02}a"), format!("k{i:02}b")))
            .collect();
        let specs: Vec<(&str, &str)> = disjoint
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(run(&specs), 2, "17 tables count as two runs");
    }
}
