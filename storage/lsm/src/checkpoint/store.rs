//! A directory of checkpoints: naming, retention, leases while they are read, and cleanup.
//!
//! Checkpoints are named `ckpt-<log index, 20 digits>-<sequence, 6 digits>` and ordered by
//! that. The store keeps the newest `keep` (two by default); an older one is deleted as soon as
//! no lease holds it. A lease pins a checkpoint while something (a snapshot stream, a backup)
//! reads it. Opening the store removes unfinished checkpoints left by a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::install::Installer;
use super::meta::{CheckpointMeta, CHECKPOINT_FILE};
use super::CheckpointInfo;
use crate::engine::Engine;
use crate::error::{Error, InvalidArgument, Result};
use crate::vfs::VfsRef;

/// How many checkpoints a store keeps by default.
pub const DEFAULT_KEEP: usize = 2;

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("ckpt-")?;
    let (index, seq) = rest.split_once('-')?;
    if index.len() != 20 || seq.len() != 6 {
        return None;
    }
    Some((index.parse().ok()?, seq.parse().ok()?))
}

fn make_name(log_index: u64, seq: u64) -> String {
    format!("ckpt-{log_index:020}-{seq:06}")
}

#[derive(Debug, Default)]
struct State {
    leases: HashMap<String, usize>,
    next_seq: u64,
    /// Names being written right now (not yet complete, not to be cleaned up).
    in_progress: Vec<String>,
}

#[derive(Debug)]
pub(super) struct StoreInner {
    pub vfs: VfsRef,
    pub root: PathBuf,
    keep: usize,
    state: Mutex<State>,
}

/// A directory of checkpoints. Cloning shares the store.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    inner: Arc<StoreInner>,
}

impl CheckpointStore {
    /// Opens (or creates) the store in `root`, removing unfinished checkpoints, and keeping at
    /// most `keep` (at least one).
    pub fn open(vfs: VfsRef, root: impl AsRef<Path>, keep: usize) -> Result<CheckpointStore> {
        let root = root.as_ref().to_path_buf();
        vfs.create_dir_all(&root)?;
        let mut next_seq = 1;
        for name in vfs.list(&root)? {
            let dir = root.join(&name);
            let Some((_, seq)) = parse_name(&name) else {
                continue;
            };
            next_seq = next_seq.max(seq + 1);
            if CheckpointMeta::read(vfs.as_ref(), &dir).is_err() {
                tracing::info!(checkpoint = %name, "removing unfinished checkpoint");
                vfs.remove_dir_all(&dir)?;
            }
        }
        let store = CheckpointStore {
            inner: Arc::new(StoreInner {
                vfs,
                root,
                keep: keep.max(1),
                state: Mutex::new(State {
                    next_seq,
                    ..State::default()
                }),
            }),
        };
        store.inner.prune()?;
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Deletes the checkpoints (other than those being read or written) whose files fail their
    /// recorded sizes or CRCs, and returns their names. Blocking: it reads every file.
    pub fn remove_damaged(&self) -> Result<Vec<String>> {
        self.inner.remove_damaged()
    }

    /// Reserves the name of a new checkpoint at `log_index`.
    fn reserve(&self, log_index: u64) -> String {
        let mut st = self.inner.state.lock();
        let name = make_name(log_index, st.next_seq);
        st.next_seq += 1;
        st.in_progress.push(name.clone());
        name
    }

    fn unreserve(&self, name: &str) {
        self.inner.state.lock().in_progress.retain(|n| n != name);
    }

    /// Takes a checkpoint of `engine` (its last flushed state) with the caller's `blob`, then
    /// drops checkpoints beyond the newest `keep` that nobody reads.
    pub fn create(&self, engine: &Engine, blob: Bytes) -> Result<CheckpointInfo> {
        self.create_with(engine, &[], |_| Ok(blob))
    }

    /// Like [`CheckpointStore::create`], with the blob made from the checkpoint's contents and
    /// the owner's files under `extra_dirs` carried too (see [`Engine::checkpoint_with`]).
    pub fn create_with(
        &self,
        engine: &Engine,
        extra_dirs: &[&str],
        make_blob: impl FnOnce(&dyn Fn(&[u8]) -> Result<Option<Bytes>>) -> Result<Bytes>,
    ) -> Result<CheckpointInfo> {
        let name = self.reserve(engine.flushed_index());
        let dir = self.inner.root.join(&name);
        let result = engine.checkpoint_with(&dir, extra_dirs, make_blob);
        self.unreserve(&name);
        match result {
            Ok(info) => {
                self.inner.prune()?;
                Ok(info)
            }
            Err(e) => {
                if self.inner.vfs.exists(&dir).unwrap_or(false) {
                    let _ = self.inner.vfs.remove_dir_all(&dir);
                }
                Err(e)
            }
        }
    }

    /// Every complete checkpoint, oldest first.
    pub fn list(&self) -> Result<Vec<CheckpointInfo>> {
        self.inner.list()
    }

    /// The newest complete checkpoint.
    pub fn latest(&self) -> Result<Option<CheckpointInfo>> {
        Ok(self.inner.list()?.pop())
    }

    /// Pins the checkpoint named `name` while the lease lives.
    pub fn lease(&self, name: &str) -> Result<CheckpointLease> {
        let mut st = self.inner.state.lock();
        let dir = self.inner.root.join(name);
        if parse_name(name).is_none() {
            return Err(InvalidArgument::UnknownCheckpoint { name: name.into() }.into());
        }
        let meta = CheckpointMeta::read(self.inner.vfs.as_ref(), &dir).map_err(|_| {
            Error::InvalidArgument(InvalidArgument::UnknownCheckpoint { name: name.into() })
        })?;
        *st.leases.entry(name.to_string()).or_default() += 1;
        Ok(CheckpointLease {
            store: self.inner.clone(),
            name: name.to_string(),
            info: CheckpointInfo { dir, meta },
        })
    }

    /// Starts receiving a checkpoint described by `expected` (sent by a peer ahead of the
    /// files). Nothing is visible until [`Installer::finish`] succeeds.
    pub fn begin_install(&self, expected: CheckpointMeta) -> Result<Installer> {
        Installer::validate(&expected)?;
        let name = self.reserve(expected.log_index);
        let dir = self.inner.root.join(&name);
        let store = self.clone();
        let reserved = name.clone();
        Installer::new(self.inner.vfs.clone(), dir, expected, move || {
            store.unreserve(&reserved);
            let _ = store.inner.prune();
        })
        .inspect_err(|_| self.unreserve(&name))
    }
}

impl StoreInner {
    fn list(&self) -> Result<Vec<CheckpointInfo>> {
        let mut found = Vec::new();
        for name in self.vfs.list(&self.root)? {
            let Some(order) = parse_name(&name) else {
                continue;
            };
            let dir = self.root.join(&name);
            if let Ok(meta) = CheckpointMeta::read(self.vfs.as_ref(), &dir) {
                found.push((order, CheckpointInfo { dir, meta }));
            }
        }
        found.sort_by_key(|(order, _)| *order);
        Ok(found.into_iter().map(|(_, info)| info).collect())
    }

    /// Deletes every checkpoint no lease holds whose files no longer match their recorded
    /// sizes and CRCs (checkpoints share their tables with the engine through hard links, so
    /// damage to an engine's table damages them too). Returns the names removed. Blocking: it
    /// reads every file.
    fn remove_damaged(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for info in self.list()? {
            let name = info.name();
            {
                let st = self.state.lock();
                if st.leases.get(&name).copied().unwrap_or(0) > 0 || st.in_progress.contains(&name)
                {
                    continue;
                }
            }
            if let Err(e) = super::verify::verify_files(self.vfs.as_ref(), &info.dir, &info.meta) {
                tracing::warn!(checkpoint = %name, error = %e, "removing a damaged checkpoint");
                self.vfs.remove(&info.dir.join(CHECKPOINT_FILE))?;
                self.vfs.sync_dir(&info.dir)?;
                self.vfs.remove_dir_all(&info.dir)?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Deletes complete checkpoints beyond the newest `keep` that no lease holds. The metadata
    /// file goes first, so a crash mid-way leaves an unfinished checkpoint (removed at open),
    /// never one that looks complete but misses files.
    fn prune(&self) -> Result<()> {
        let all = self.list()?;
        let excess = all.len().saturating_sub(self.keep);
        let st = self.state.lock();
        for info in all.into_iter().take(excess) {
            let name = info.name();
            if st.leases.get(&name).copied().unwrap_or(0) > 0 || st.in_progress.contains(&name) {
                continue;
            }
            tracing::info!(checkpoint = %name, "removing old checkpoint");
            self.vfs.remove(&info.dir.join(CHECKPOINT_FILE))?;
            self.vfs.sync_dir(&info.dir)?;
            self.vfs.remove_dir_all(&info.dir)?;
        }
        Ok(())
    }
}

/// A checkpoint pinned for reading. Dropping it lets the store delete the checkpoint if it is
/// no longer among the newest it keeps.
#[derive(Debug)]
pub struct CheckpointLease {
    store: Arc<StoreInner>,
    name: String,
    info: CheckpointInfo,
}

impl CheckpointLease {
    /// What the checkpoint holds.
    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }

    /// Reads up to `len` bytes of `file` from `offset` (less at the end of the file). Only
    /// files the checkpoint lists can be read.
    pub fn read_chunk(&self, file: &str, offset: u64, len: usize) -> Result<Bytes> {
        let Some(f) = self.info.meta.files.iter().find(|f| f.name == file) else {
            return Err(InvalidArgument::UnknownCheckpointFile { name: file.into() }.into());
        };
        if offset > f.size {
            return Err(InvalidArgument::ChunkOutOfRange {
                name: file.into(),
                offset,
                size: f.size,
            }
            .into());
        }
        let n = (len as u64).min(f.size - offset) as usize;
        let mut buf = vec![0u8; n];
        let handle = self.store.vfs.open(&self.info.dir.join(file))?;
        handle.read_at(offset, &mut buf)?;
        Ok(Bytes::from(buf))
    }
}

impl Drop for CheckpointLease {
    fn drop(&mut self) {
        {
            let mut st = self.store.state.lock();
            if let Some(n) = st.leases.get_mut(&self.name) {
                *n -= 1;
                if *n == 0 {
                    st.leases.remove(&self.name);
                }
            }
        }
        if let Err(e) = self.store.prune() {
            tracing::warn!(error = %e, "could not remove old checkpoints");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_index_then_sequence() {
        assert_eq!(parse_name(&make_name(42, 7)), Some((42, 7)));
        assert!(make_name(9, 100) < make_name(10, 1));
        assert_eq!(parse_name("ckpt-1-2"), None);
        assert_eq!(parse_name("db-000001"), None);
    }
}
