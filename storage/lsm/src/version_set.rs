//! The version set: the current version, the manifest behind it, and file numbering.
//!
//! Opening an engine replays the manifest, opens every table it lists, writes a fresh manifest
//! holding a snapshot of the state (which also drops a torn tail of the old one), and only then
//! removes files no version refers to: tables of flushes that crashed before their edit, `.tmp`
//! files, and old manifests. A file number found on disk is never handed out again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::filenames::{classify, manifest_name, table_name, FileKind};
use crate::manifest::{self, ManifestState, ManifestWriter, VersionEdit};
use crate::sstable::Table;
use crate::version::{FileMeta, Version, NUM_LEVELS};
use crate::vfs::VfsRef;

/// The largest file number an engine directory may hold. Numbers are counted up one at a time
/// from 1, so one beyond this comes from a damaged manifest or a stray file, not from use; the
/// half of the range kept free means counting on from any accepted number cannot overflow
/// (which would hand out numbers of live tables again).
const MAX_FILE_NUMBER: u64 = u64::MAX / 2;

/// The live file set and its manifest. Callers serialize access (the engine holds it in a
/// mutex); table building happens outside that lock.
#[derive(Debug)]
pub struct VersionSet {
    vfs: VfsRef,
    dir: PathBuf,
    state: ManifestState,
    current: Arc<Version>,
    manifest: ManifestWriter,
    max_manifest_bytes: u64,
}

impl VersionSet {
    /// Recovers the file set of the engine in `dir` (creating an empty one if there is none).
    pub fn recover(vfs: VfsRef, dir: &Path, max_manifest_bytes: u64) -> Result<VersionSet> {
        let replayed = manifest::replay(vfs.as_ref(), dir)?;
        let names = vfs.list(dir)?;
        let mut state = match replayed {
            Some((number, state)) => {
                if state.next_file_number > MAX_FILE_NUMBER {
                    return Err(Error::corruption(
                        dir.join(manifest_name(number)),
                        0,
                        format!(
                            "next file number {} is past {MAX_FILE_NUMBER}",
                            state.next_file_number
                        ),
                    ));
                }
                state
            }
            None => {
                // Without CURRENT the directory is new, or the first open crashed before
                // CURRENT was written: then there is no table. Tables without CURRENT mean the
                // directory was damaged; starting empty would delete them as leftovers.
                if let Some(table) = names
                    .iter()
                    .find(|n| matches!(classify(n), FileKind::Table(_)))
                {
                    return Err(Error::corruption(
                        dir.join(table),
                        0,
                        "tables exist but CURRENT is missing; refusing to start empty",
                    ));
                }
                ManifestState::default()
            }
        };
        let max_seen = names
            .iter()
            .filter_map(|n| match classify(n) {
                FileKind::Table(x) | FileKind::Manifest(x) => Some((x, n)),
                _ => None,
            })
            .max();
        let max_seen = match max_seen {
            Some((x, name)) if x > MAX_FILE_NUMBER => {
                return Err(Error::corruption(
                    dir.join(name),
                    0,
                    format!("file number {x} is past {MAX_FILE_NUMBER}"),
                ));
            }
            Some((x, _)) => x,
            None => 0,
        };
        state.next_file_number = state.next_file_number.max(max_seen + 1).max(1);

        let mut levels: [Vec<Arc<FileMeta>>; NUM_LEVELS] = Default::default();
        for desc in state.files.values() {
            let path = dir.join(table_name(desc.number));
            if usize::from(desc.level) >= NUM_LEVELS {
                return Err(Error::corruption(
                    &path,
                    0,
                    "manifest places table past the last level",
                ));
            }
            if !vfs.exists(&path)? {
                return Err(Error::corruption(
                    &path,
                    0,
                    "table listed in the manifest is missing",
                ));
            }
            let table = Table::open(vfs.as_ref(), &path)?;
            if table.file_size() != desc.size {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "table is {} bytes, the manifest says {}",
                        table.file_size(),
                        desc.size
                    ),
                ));
            }
            levels[usize::from(desc.level)].push(Arc::new(FileMeta::new(
                desc.clone(),
                Arc::new(table),
                vfs.clone(),
            )));
        }

        let number = state.next_file_number;
        state.next_file_number += 1;
        let manifest = ManifestWriter::create(vfs.as_ref(), dir, number, &state.snapshot())?;

        // List again: writing the new manifest and CURRENT may itself have replaced leftovers.
        for name in &vfs.list(dir)? {
            let stale = match classify(name) {
                FileKind::Temp => true,
                FileKind::Table(n) => !state.files.keys().any(|(_, x)| *x == n),
                FileKind::Manifest(n) => n != number,
                FileKind::Current | FileKind::Other => false,
            };
            if stale {
                tracing::info!(file = %name, "removing file no version refers to");
                vfs.remove(&dir.join(name))?;
            }
        }

        Ok(VersionSet {
            vfs,
            dir: dir.to_path_buf(),
            state,
            current: Arc::new(Version::from_levels(levels)),
            manifest,
            max_manifest_bytes,
        })
    }

    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        self.current.clone()
    }

    /// Every sequence number at or below this is in the tables.
    pub fn flushed_seq(&self) -> u64 {
        self.state.flushed_seq
    }

    /// Hands out a new file number (recorded in the manifest with the next edit).
    pub fn new_file_number(&mut self) -> u64 {
        let n = self.state.next_file_number;
        self.state.next_file_number += 1;
        n
    }

    /// Makes `edit` durable in the manifest, then installs the version it describes. `added`
    /// must hold the open tables of `edit.added`, in any order.
    pub fn log_and_apply(
        &mut self,
        mut edit: VersionEdit,
        added: Vec<Arc<FileMeta>>,
    ) -> Result<Arc<Version>> {
        edit.next_file_number = Some(self.state.next_file_number);
        self.manifest.append(&edit)?;
        self.state.apply(&edit);

        let mut levels = self.current.levels.clone();
        for (level, number) in &edit.removed {
            if let Some(files) = levels.get_mut(usize::from(*level)) {
                files.retain(|f| f.desc.number != *number);
            }
        }
        for f in added {
            if let Some(files) = levels.get_mut(usize::from(f.desc.level)) {
                files.push(f);
            }
        }
        self.current = Arc::new(Version::from_levels(levels));

        if self.manifest.size() > self.max_manifest_bytes {
            self.roll_manifest()?;
        }
        Ok(self.current.clone())
    }

    /// Replaces the manifest with a new one holding a snapshot of the state.
    fn roll_manifest(&mut self) -> Result<()> {
        let number = self.new_file_number();
        let old = self.manifest.path().to_path_buf();
        self.manifest =
            ManifestWriter::create(self.vfs.as_ref(), &self.dir, number, &self.state.snapshot())?;
        tracing::info!(manifest = %manifest_name(number), "manifest rolled");
        self.vfs.remove(&old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{SimVfs, Vfs};

    fn dir() -> &'static Path {
        Path::new("/db")
    }

    fn recover(vfs: &SimVfs) -> Result<VersionSet> {
        VersionSet::recover(vfs.shared(), dir(), 1 << 20)
    }

    fn engine_dir_whose_manifest_says_next(next_file_number: u64) -> SimVfs {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(dir()).unwrap();
        let base = VersionEdit {
            next_file_number: Some(next_file_number),
            ..VersionEdit::default()
        };
        ManifestWriter::create(&vfs, dir(), 1, &base).unwrap();
        vfs
    }

    #[test]
    fn a_file_number_near_the_end_of_the_range_is_corruption_not_an_overflow() {
        let vfs = engine_dir_whose_manifest_says_next(MAX_FILE_NUMBER);
        let mut set = recover(&vfs).unwrap();
        assert_eq!(set.new_file_number(), MAX_FILE_NUMBER + 1);

        for next in [MAX_FILE_NUMBER + 1, u64::MAX] {
            let vfs = engine_dir_whose_manifest_says_next(next);
            let err = recover(&vfs).unwrap_err();
            assert!(
                matches!(&err, Error::Corruption { file, .. } if file.ends_with("MANIFEST-000001")),
                "{err}"
            );
        }

        let vfs = engine_dir_whose_manifest_says_next(2);
        let stray = dir().join(format!("{}.sst", u64::MAX));
        vfs.create(&stray).unwrap();
        let err = recover(&vfs).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { file, .. } if *file == stray),
            "{err}"
        );
    }
}
