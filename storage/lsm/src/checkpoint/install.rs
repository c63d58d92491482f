//! Receiving a checkpoint from a peer into a new directory.
//!
//! The peer first sends the checkpoint's metadata (log index, blob, files with sizes and
//! CRCs), then the files in chunks. Every name and offset is checked against that list (it
//! came over the network); at the end every file's size and CRC must match, every table must
//! verify, and only then is the `CHECKPOINT` file written, which makes the checkpoint exist.
//! Anything less leaves an unfinished directory that is removed.

use std::collections::HashMap;
use std::path::PathBuf;

use super::extra::{check_extra_dirs, is_extra_file};
use super::meta::{CheckpointMeta, CHECKPOINT_FILE};
use super::verify::verify_files;
use super::CheckpointInfo;
use crate::error::{Error, InvalidArgument, Result};
use crate::filenames::{classify, FileKind};
use crate::vfs::{parent_dir, write_atomic, FileRef, VfsRef};

/// A checkpoint being received. Dropping it without [`Installer::finish`] removes what was
/// received.
pub struct Installer {
    vfs: VfsRef,
    dir: PathBuf,
    expected: CheckpointMeta,
    open: HashMap<String, FileRef>,
    finished: bool,
    on_done: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer").field("dir", &self.dir).finish()
    }
}

impl Installer {
    /// Checks that a received file list is one this code would produce: table, manifest and
    /// CURRENT files with plain names, and files under the extra directories the checkpoint
    /// declares, each listed once.
    pub(super) fn validate(expected: &CheckpointMeta) -> Result<()> {
        check_extra_dirs(&expected.extra_dirs)?;
        let mut seen = std::collections::HashSet::new();
        for f in &expected.files {
            let plain = !f.name.is_empty()
                && !f.name.contains(['/', '\\'])
                && f.name != "."
                && f.name != "..";
            let known = plain
                && matches!(
                    classify(&f.name),
                    FileKind::Table(_) | FileKind::Manifest(_) | FileKind::Current
                );
            if !(known || is_extra_file(&f.name, &expected.extra_dirs))
                || !seen.insert(f.name.as_str())
            {
                return Err(InvalidArgument::UnknownCheckpointFile {
                    name: f.name.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    pub(super) fn new(
        vfs: VfsRef,
        dir: PathBuf,
        expected: CheckpointMeta,
        on_done: impl FnOnce() + Send + 'static,
    ) -> Result<Installer> {
        if vfs.exists(&dir)? {
            vfs.remove_dir_all(&dir)?;
        }
        vfs.create_dir_all(&dir)?;
        Ok(Installer {
            vfs,
            dir,
            expected,
            open: HashMap::new(),
            finished: false,
            on_done: Some(Box::new(on_done)),
        })
    }

    /// Where the checkpoint is being written.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Writes a chunk of `file` at `offset`.
    pub fn write(&mut self, file: &str, offset: u64, data: &[u8]) -> Result<()> {
        let Some(f) = self.expected.files.iter().find(|f| f.name == file) else {
            return Err(InvalidArgument::UnknownCheckpointFile { name: file.into() }.into());
        };
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > f.size) {
            return Err(InvalidArgument::ChunkOutOfRange {
                name: file.into(),
                offset,
                size: f.size,
            }
            .into());
        }
        let handle = match self.open.get(file) {
            Some(h) => h.clone(),
            None => {
                let path = self.dir.join(file);
                self.vfs.create_dir_all(parent_dir(&path))?;
                let h = self.vfs.create(&path)?;
                self.open.insert(file.to_string(), h.clone());
                h
            }
        };
        handle.write_at(offset, data)
    }

    /// Checks every file, makes them durable and writes the metadata that completes the
    /// checkpoint.
    pub fn finish(mut self) -> Result<CheckpointInfo> {
        for f in &self.expected.files {
            let path = self.dir.join(&f.name);
            let Some(handle) = self.open.get(&f.name) else {
                return Err(Error::corruption(
                    &path,
                    0,
                    "checkpoint file was never received",
                ));
            };
            handle.sync_data()?;
        }
        let names: Vec<String> = self.expected.files.iter().map(|f| f.name.clone()).collect();
        super::create::sync_dirs(self.vfs.as_ref(), &self.dir, &names)?;
        self.vfs.sync_dir(&self.dir)?;
        // Sizes, CRCs, table blocks and the manifest are all checked before the metadata that
        // makes the checkpoint exist is written.
        verify_files(self.vfs.as_ref(), &self.dir, &self.expected)?;
        write_atomic(
            self.vfs.as_ref(),
            &self.dir.join(CHECKPOINT_FILE),
            &self.expected.encode(),
        )?;
        self.finished = true;
        Ok(CheckpointInfo {
            dir: self.dir.clone(),
            meta: self.expected.clone(),
        })
    }
}

impl Drop for Installer {
    fn drop(&mut self) {
        if !self.finished {
            // Metadata first, so a crash mid-way cannot leave something that looks complete.
            let _ = self.vfs.remove(&self.dir.join(CHECKPOINT_FILE));
            let _ = self.vfs.remove_dir_all(&self.dir);
        }
        if let Some(done) = self.on_done.take() {
            done();
        }
    }
}
