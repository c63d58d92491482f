//! Choosing the next compaction.
//!
//! Every level but the last has a score: level 0 its file count over the trigger (4), level
//! `n >= 1` its bytes over its target (`level1_bytes * multiplier^(n-1)`). The level with the
//! highest score of at least 1 is compacted into the next one:
//!
//! * from level 0, every level-0 file goes (they overlap, and an older overlapping file must
//!   never be left above newer data), with the level-1 files they overlap;
//! * from level `n >= 1`, one file: among the next few files after the level's compaction
//!   pointer (which rotates through the key space), the one whose key range overlaps the fewest
//!   bytes of level `n + 1`, with those overlapping files. A file that overlaps nothing is moved
//!   down without being rewritten.
//!
//! Files already in a running compaction are never picked twice.

use std::collections::HashSet;
use std::sync::Arc;

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
}

impl LevelShape {
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
    /// Files of `level + 1` that overlap them.
    pub next_inputs: Vec<Arc<FileMeta>>,
}

impl Pick {
    /// A single file with nothing below it to merge: it can move down as it is.
    pub fn is_trivial_move(&self) -> bool {
        self.level > 0 && self.inputs.len() == 1 && self.next_inputs.is_empty()
    }

    /// Every file involved.
    pub fn all_files(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.inputs.iter().chain(self.next_inputs.iter())
    }

    /// Bytes read by this compaction.
    pub fn input_bytes(&self) -> u64 {
        self.all_files().map(|f| f.desc.size).sum()
    }
}

/// Score of every level that can be compacted (the last level cannot).
pub fn scores(version: &Version, shape: &LevelShape) -> [f64; NUM_LEVELS - 1] {
    let mut out = [0.0; NUM_LEVELS - 1];
    out[0] = version.levels[0].len() as f64 / shape.l0_trigger.max(1) as f64;
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

/// Level 0 into level 1: every level-0 file, plus the level-1 files they overlap.
fn pick_level0(version: &Version, busy: &HashSet<u64>) -> Option<Pick> {
    let inputs = version.levels[0].clone();
    if inputs.is_empty() || any_busy(&inputs, busy) {
        return None;
    }
    let (lo, hi) = range_of(&inputs)?;
    let next_inputs = overlapping(version, 1, &lo, &hi);
    if any_busy(&next_inputs, busy) {
        return None;
    }
    Some(Pick {
        level: 0,
        inputs,
        next_inputs,
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
        0 => pick_level0(version, busy),
        _ => pick_deeper(version, level, busy, &mut pointers[level]),
    })
}

/// A compaction that moves all of `level` into `level + 1`, whatever the scores (for manual
/// compaction).
pub fn pick_whole_level(version: &Version, level: usize, busy: &HashSet<u64>) -> Option<Pick> {
    if level == 0 {
        return pick_level0(version, busy);
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikey::{InternalKey, ValueKind};
    use crate::manifest::FileDesc;
    use crate::sstable::{Table, TableBuilder, TableConfig};
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
        let (props, size) = b.finish().unwrap();
        let table = Arc::new(Table::open(vfs, &path).unwrap());
        let desc = FileDesc {
            level,
            number,
            size,
            entries: props.entries,
            smallest: props.smallest,
            largest: props.largest,
        };
        Arc::new(FileMeta::new(desc, table, vfs.shared()))
    }

    fn shape() -> LevelShape {
        LevelShape {
            l0_trigger: 4,
            level1_bytes: 1000,
            multiplier: 10,
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
}
