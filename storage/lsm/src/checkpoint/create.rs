//! Writing a checkpoint of an engine's flushed state.
//!
//! The live tables of the version are hard-linked (tables are immutable, so the links share
//! their data safely), a manifest and CURRENT describing exactly those tables are written, and
//! the `CHECKPOINT` file goes last. Writes to the engine continue meanwhile: the version being
//! copied holds its tables, so no compaction can delete them under the copy.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;

use super::meta::{CheckpointFile, CheckpointMeta, CHECKPOINT_FILE};
use super::CheckpointInfo;
use crate::error::{Error, Result};
use crate::filenames::{table_name, CURRENT};
use crate::ikey::index_of;
use crate::manifest::{ManifestState, ManifestWriter};
use crate::version::Version;
use crate::vfs::{parent_dir, write_atomic, Vfs};

/// The owner's files a checkpoint carries beside the tables (see [`super::extra`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The extra directories the checkpoint declares, relative to the engine directory.
    pub dirs: &'a [&'a str],
    /// The files to copy, relative to the engine directory; each lies under one of `dirs`.
    pub files: &'a [String],
}

/// Writes a checkpoint of `version` (whose tables hold every batch up to `flushed_seq`) and of
/// the owner's `extras` from the engine in `engine_dir` into the new directory `dir`.
pub fn write(
    vfs: &dyn Vfs,
    engine_dir: &Path,
    dir: &Path,
    version: &Version,
    flushed_seq: u64,
    extras: Extras<'_>,
    blob: Bytes,
) -> Result<CheckpointInfo> {
    if vfs.exists(dir)? {
        return Err(Error::io(
            "checkpoint",
            dir,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "directory exists"),
        ));
    }
    vfs.create_dir_all(dir)?;
    vfs.sync_dir(parent_dir(dir))?;

    let mut files = Vec::new();
    let mut descs = BTreeMap::new();
    let mut max_number = 0;
    for f in version.levels.iter().flatten() {
        let name = table_name(f.desc.number);
        vfs.hard_link(&engine_dir.join(&name), &dir.join(&name))?;
        files.push(CheckpointFile {
            name,
            size: f.table.file_size(),
            crc32: f.table.file_crc32(),
        });
        descs.insert((f.desc.level, f.desc.number), f.desc.clone());
        max_number = max_number.max(f.desc.number);
    }
    for rel in extras.files {
        let target = dir.join(rel);
        vfs.create_dir_all(parent_dir(&target))?;
        vfs.hard_link(&engine_dir.join(rel), &target)?;
        let content = vfs.read_all(&target)?;
        files.push(CheckpointFile {
            name: rel.clone(),
            size: content.len() as u64,
            crc32: crc32fast::hash(&content),
        });
    }
    sync_dirs(vfs, dir, extras.files)?;
    let manifest_number = max_number + 1;
    let state = ManifestState {
        files: descs,
        next_file_number: manifest_number + 1,
        flushed_seq,
    };
    // Also fsyncs the directory, making the links durable, and writes CURRENT.
    let manifest = ManifestWriter::create(vfs, dir, manifest_number, &state.snapshot())?;
    for path in [manifest.path().to_path_buf(), dir.join(CURRENT)] {
        let content = vfs.read_all(&path)?;
        files.push(CheckpointFile {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: content.len() as u64,
            crc32: crc32fast::hash(&content),
        });
    }
    let meta = CheckpointMeta {
        log_index: index_of(flushed_seq),
        blob,
        files,
        extra_dirs: extras.dirs.iter().map(|d| d.to_string()).collect(),
    };
    write_atomic(vfs, &dir.join(CHECKPOINT_FILE), &meta.encode())?;
    Ok(CheckpointInfo {
        dir: dir.to_path_buf(),
        meta,
    })
}

/// Fsyncs every directory on the way to each of `files` (relative to `root`), deepest first, so
/// new directory entries are durable before the checkpoint is declared complete.
pub(crate) fn sync_dirs(vfs: &dyn Vfs, root: &Path, files: &[String]) -> Result<()> {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for rel in files {
        let mut d = parent_dir(&root.join(rel)).to_path_buf();
        while d.starts_with(root) && d != root {
            if !dirs.contains(&d) {
                dirs.push(d.clone());
            }
            d = parent_dir(&d).to_path_buf();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        vfs.sync_dir(&d)?;
    }
    Ok(())
}
