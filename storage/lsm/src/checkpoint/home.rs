//! The engine's home: which directory holds the live engine, and switching it to a checkpoint.
//!
//! ```text
//! <root>/ACTIVE       "db-000003\n", replaced crash-atomically
//! <root>/db-000003/   the live engine
//! ```
//!
//! Installing a snapshot means: receive a checkpoint, close the engine, [`EngineHome::switch_to`]
//! the checkpoint (its files are hard-linked into a fresh `db-*` directory, then ACTIVE is
//! swapped), and open the engine in the new directory. A crash at any point leaves ACTIVE
//! naming a complete directory; leftovers are removed when the home is opened.

use std::path::{Path, PathBuf};

use super::meta::CHECKPOINT_FILE;
use super::CheckpointInfo;
use crate::error::{Error, Result};
use crate::vfs::{parent_dir, write_atomic, Vfs, VfsRef, LOCK_FILE};

const ACTIVE: &str = "ACTIVE";

fn parse_db(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("db-")?;
    (digits.len() == 6).then(|| digits.parse().ok()).flatten()
}

/// Where the live engine lives.
#[derive(Debug)]
pub struct EngineHome {
    vfs: VfsRef,
    root: PathBuf,
    active: u64,
}

impl EngineHome {
    /// Opens (or creates) the home in `root`, removing engine directories ACTIVE does not name.
    pub fn open(vfs: VfsRef, root: impl AsRef<Path>) -> Result<EngineHome> {
        let root = root.as_ref().to_path_buf();
        vfs.create_dir_all(&root)?;
        let pointer = root.join(ACTIVE);
        let active = if vfs.exists(&pointer)? {
            let raw = vfs.read_all(&pointer)?;
            std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.strip_suffix('\n'))
                .and_then(parse_db)
                .ok_or_else(|| {
                    Error::corruption(&pointer, 0, "ACTIVE does not name an engine directory")
                })?
        } else {
            // No ACTIVE: a new home, or the first open crashed before writing it (then the only
            // engine directory is empty). Engine data without ACTIVE means damage: refuse
            // rather than delete it.
            for name in vfs.list(&root)? {
                if parse_db(&name).is_some() && !vfs.list(&root.join(&name))?.is_empty() {
                    return Err(Error::corruption(
                        root.join(&name),
                        0,
                        "engine directory exists but ACTIVE is missing",
                    ));
                }
            }
            let first = 1;
            vfs.create_dir_all(&root.join(db_name(first)))?;
            vfs.sync_dir(&root)?;
            write_atomic(
                vfs.as_ref(),
                &pointer,
                format!("{}\n", db_name(first)).as_bytes(),
            )?;
            first
        };
        if !vfs.exists(&root.join(db_name(active)))? {
            return Err(Error::corruption(
                &pointer,
                0,
                "ACTIVE names a missing directory",
            ));
        }
        for name in vfs.list(&root)? {
            if parse_db(&name).is_some_and(|n| n != active) {
                tracing::info!(dir = %name, "removing an engine directory that is not active");
                vfs.remove_dir_all(&root.join(&name))?;
            }
        }
        Ok(EngineHome { vfs, root, active })
    }

    /// The live engine directory of the home in `root`, as ACTIVE names it now, read without
    /// changing anything (for tools looking at a running node's files); `None` when there is
    /// no ACTIVE (no engine was ever opened there). The answer changes when a snapshot is
    /// installed.
    pub fn current_dir(vfs: &dyn Vfs, root: impl AsRef<Path>) -> Result<Option<PathBuf>> {
        let root = root.as_ref();
        let pointer = root.join(ACTIVE);
        if !vfs.exists(&pointer)? {
            return Ok(None);
        }
        let raw = vfs.read_all(&pointer)?;
        let name = std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.strip_suffix('\n'))
            .filter(|s| parse_db(s).is_some())
            .ok_or_else(|| {
                Error::corruption(&pointer, 0, "ACTIVE does not name an engine directory")
            })?;
        Ok(Some(root.join(name)))
    }

    /// The directory to open the engine in.
    pub fn active_dir(&self) -> PathBuf {
        self.root.join(db_name(self.active))
    }

    /// Makes a copy of `checkpoint` the live engine directory and returns it. The engine of
    /// the old directory must be closed first.
    pub fn switch_to(&mut self, checkpoint: &CheckpointInfo) -> Result<PathBuf> {
        let old = self.active_dir();
        // Holding the old directory's lock proves its engine is closed.
        let lock = self.vfs.lock(&old.join(LOCK_FILE))?;
        let next = self.active + 1;
        let dir = self.root.join(db_name(next));
        if self.vfs.exists(&dir)? {
            self.vfs.remove_dir_all(&dir)?;
        }
        self.vfs.create_dir_all(&dir)?;
        self.vfs.sync_dir(&self.root)?;
        let mut names = Vec::new();
        for f in &checkpoint.meta.files {
            if f.name != CHECKPOINT_FILE {
                let target = dir.join(&f.name);
                self.vfs.create_dir_all(parent_dir(&target))?;
                self.vfs.hard_link(&checkpoint.dir.join(&f.name), &target)?;
                names.push(f.name.clone());
            }
        }
        super::create::sync_dirs(self.vfs.as_ref(), &dir, &names)?;
        self.vfs.sync_dir(&dir)?;
        write_atomic(
            self.vfs.as_ref(),
            &self.root.join(ACTIVE),
            format!("{}\n", db_name(next)).as_bytes(),
        )?;
        self.active = next;
        drop(lock);
        // The switch is done; a failure here only leaves a stale directory for open() to remove.
        if let Err(e) = self.vfs.remove_dir_all(&old) {
            tracing::warn!(error = %e, dir = %old.display(), "could not remove the old engine directory");
        }
        tracing::info!(dir = %dir.display(), log_index = checkpoint.meta.log_index, "engine switched to a checkpoint");
        Ok(dir)
    }
}

fn db_name(n: u64) -> String {
    format!("db-{n:06}")
}
