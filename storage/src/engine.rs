//! The engine facade: apply batches, read, flush, report.
//!
//! Writes arrive as batches tagged with their Raft log index. A batch is inserted into the
//! active memtable and becomes visible at once and whole: readers take the snapshot "everything
//! up to the last applied index" (`snapshot_at(index)`), so they never see part of a batch.
//! Between batches, a full memtable is frozen into the immutable queue and a background thread
//! writes it to a level-0 table and records that in the manifest.
//!
//! The engine has no WAL: what is not yet in a table is lost in a crash, and after a restart
//! [`Engine::flushed_index`] tells the caller from which log index to re-apply.

mod flush;
mod options;
mod stats;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use event_listener::{Event, Listener};
use parking_lot::{Mutex, RwLock};

pub use options::EngineOptions;
pub use stats::{EngineStats, LevelStats};

use crate::batch::{BatchOp, WriteBatch};
use crate::error::{Error, InvalidArgument, Result};
use crate::ikey::{index_of, seq_of, snapshot_at, ValueKind, MAX_LOG_INDEX};
use crate::memtable::{Lookup, Memtable, MemtableIter};
use crate::merge::{MergeIter, Source, VisibleIter};
use crate::version::{ReadCounters, Version};
use crate::version_set::VersionSet;
use crate::vfs::{FileLock, VfsRef, LOCK_FILE};
use stats::Counters;

/// What readers use: the memtables and tables of one moment.
#[derive(Debug)]
struct View {
    active: Arc<Memtable>,
    /// Frozen memtables, oldest first.
    immutables: Vec<Arc<Memtable>>,
    version: Arc<Version>,
}

struct Inner {
    vfs: VfsRef,
    dir: PathBuf,
    opts: EngineOptions,
    /// Serializes appliers; holds the last applied index.
    applied: Mutex<u64>,
    /// Readers' snapshot: every batch up to the last applied index.
    visible_seq: AtomicU64,
    flushed_index: AtomicU64,
    view: RwLock<Arc<View>>,
    versions: Mutex<VersionSet>,
    /// Signalled whenever a flush finishes or the engine fails.
    flushed: Event,
    failure: Mutex<Option<Arc<Error>>>,
    counters: Counters,
    reads: ReadCounters,
}

impl Inner {
    fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    fn failure(&self) -> Option<Error> {
        self.failure.lock().clone().map(Error::EngineFailed)
    }

    fn fail(&self, err: Error) {
        self.failure.lock().get_or_insert_with(|| Arc::new(err));
        self.flushed.notify(usize::MAX);
    }

    fn queue_full(&self) -> bool {
        self.view().immutables.len() >= self.opts.max_immutable_memtables
    }
}

/// A single-node LSM storage engine. Thread-safe: any number of readers, and appliers that are
/// serialized internally.
pub struct Engine {
    inner: Arc<Inner>,
    wake_flusher: Mutex<Option<Sender<()>>>,
    flusher: Option<JoinHandle<()>>,
    _lock: FileLock,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Engine {
    /// Opens (or creates) the engine in `dir`: replays the manifest, opens the tables, removes
    /// leftovers of interrupted flushes, and starts the flush thread.
    pub fn open(vfs: VfsRef, dir: impl AsRef<Path>, opts: EngineOptions) -> Result<Engine> {
        let dir = dir.as_ref().to_path_buf();
        let span = tracing::info_span!("engine_open", dir = %dir.display());
        let _enter = span.enter();
        vfs.create_dir_all(&dir)?;
        let lock = vfs.lock(&dir.join(LOCK_FILE))?;
        let versions = VersionSet::recover(vfs.clone(), &dir, opts.max_manifest_bytes)?;
        let flushed_seq = versions.flushed_seq();
        let flushed_index = index_of(flushed_seq);
        let view = View {
            active: Arc::new(Memtable::new()),
            immutables: Vec::new(),
            version: versions.current(),
        };
        let inner = Arc::new(Inner {
            vfs,
            dir,
            opts,
            applied: Mutex::new(flushed_index),
            visible_seq: AtomicU64::new(flushed_seq),
            flushed_index: AtomicU64::new(flushed_index),
            view: RwLock::new(Arc::new(view)),
            versions: Mutex::new(versions),
            flushed: Event::new(),
            failure: Mutex::new(None),
            counters: Counters::default(),
            reads: ReadCounters::default(),
        });
        let (tx, rx) = mpsc::channel();
        let worker = inner.clone();
        let flusher = std::thread::Builder::new()
            .name("qastore-flush".into())
            .spawn(move || flush::run(worker, rx))
            .map_err(|e| Error::io("spawn", "qastore-flush", e))?;
        tracing::info!(flushed_index, "engine opened");
        Ok(Engine {
            inner,
            wake_flusher: Mutex::new(Some(tx)),
            flusher: Some(flusher),
            _lock: lock,
        })
    }

    /// Applies `batch` as the entry at `log_index`, which must be above every index applied
    /// before. Operation `i` gets sequence number `log_index << 16 | i`; the batch becomes
    /// visible whole. Bad input is refused before anything changes. If the frozen-memtable
    /// queue is full this waits for a flush (async callers should await
    /// [`Engine::write_room`] first).
    pub fn apply(&self, batch: &WriteBatch, log_index: u64) -> Result<()> {
        let opts = &self.inner.opts;
        batch.validate(opts.max_key_bytes, opts.max_value_bytes)?;
        if log_index == 0 || log_index > MAX_LOG_INDEX {
            return Err(InvalidArgument::IndexOutOfRange {
                index: log_index,
                max: MAX_LOG_INDEX,
            }
            .into());
        }
        let mut applied = self.inner.applied.lock();
        if let Some(e) = self.inner.failure() {
            return Err(e);
        }
        if log_index <= *applied {
            return Err(InvalidArgument::IndexNotIncreasing {
                index: log_index,
                last: *applied,
            }
            .into());
        }
        self.wait_for_room_blocking()?;
        let view = self.inner.view();
        for (ordinal, op) in batch.ops().iter().enumerate() {
            // `validate` capped the batch at 65536 operations, so the ordinal fits.
            let seq = seq_of(log_index, ordinal as u16);
            match op {
                BatchOp::Put { key, value } => {
                    view.active.insert(key, seq, ValueKind::Put, value.clone())
                }
                BatchOp::Delete { key } => {
                    view.active
                        .insert(key, seq, ValueKind::Delete, Bytes::new())
                }
            }
        }
        view.active.set_max_index(log_index);
        self.inner
            .visible_seq
            .store(snapshot_at(log_index), Ordering::Release);
        *applied = log_index;
        if view.active.approx_bytes() >= opts.memtable_bytes {
            self.freeze();
        }
        Ok(())
    }

    /// Moves the active memtable to the flush queue and wakes the flush thread. Callers hold
    /// the applier lock, so this happens between batches.
    fn freeze(&self) {
        {
            let mut view = self.inner.view.write();
            if view.active.max_index() == 0 {
                return;
            }
            let mut immutables = view.immutables.clone();
            immutables.push(view.active.clone());
            *view = Arc::new(View {
                active: Arc::new(Memtable::new()),
                immutables,
                version: view.version.clone(),
            });
        }
        if let Some(tx) = self.wake_flusher.lock().as_ref() {
            let _ = tx.send(());
        }
    }

    /// Whether writes would wait for a flush right now.
    pub fn write_stalled(&self) -> bool {
        self.inner.queue_full()
    }

    /// Resolves once a write would not have to wait for a flush (or the engine has failed).
    pub async fn write_room(&self) {
        loop {
            if !self.inner.queue_full() || self.inner.failure().is_some() {
                return;
            }
            let listener = self.inner.flushed.listen();
            if !self.inner.queue_full() || self.inner.failure().is_some() {
                return;
            }
            listener.await;
        }
    }

    fn wait_for_room_blocking(&self) -> Result<()> {
        if !self.inner.queue_full() {
            return Ok(());
        }
        let started = Instant::now();
        tracing::debug!("write waiting for a memtable flush");
        while self.inner.queue_full() {
            if let Some(e) = self.inner.failure() {
                return Err(e);
            }
            let listener = self.inner.flushed.listen();
            if !self.inner.queue_full() {
                break;
            }
            listener.wait();
        }
        let c = &self.inner.counters;
        Counters::add(&c.stalls, 1);
        Counters::add(&c.stall_micros, started.elapsed().as_micros() as u64);
        Ok(())
    }

    /// The value of `key` as of the last applied batch.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        // Snapshot first, then the view: whatever the snapshot covers is in that view (a flush
        // only ever moves data from a memtable to a table of a newer view).
        let snapshot = self.inner.visible_seq.load(Ordering::Acquire);
        let view = self.inner.view();
        let found = std::iter::once(&view.active)
            .chain(view.immutables.iter().rev())
            .find_map(|m| m.get(key, snapshot));
        let found = match found {
            Some(l) => Some(l),
            None => view.version.get(key, snapshot, &self.inner.reads)?,
        };
        Ok(match found {
            Some(Lookup::Value(v)) => Some(v),
            Some(Lookup::Deleted) | None => None,
        })
    }

    /// Iterates over the keys within the bounds, in order, as of the last applied batch.
    pub fn scan(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> EngineIter {
        let snapshot = self.inner.visible_seq.load(Ordering::Acquire);
        let view = self.inner.view();
        let mut sources: Vec<Source> = Vec::new();
        for m in std::iter::once(&view.active).chain(view.immutables.iter().rev()) {
            sources.push(Box::new(MemtableIter::new(m.clone(), lower, upper).map(Ok)));
        }
        sources.extend(view.version.iters(lower, upper));
        EngineIter {
            inner: VisibleIter::new(MergeIter::new(sources), snapshot),
        }
    }

    /// Iterates over every key starting with `prefix`.
    pub fn scan_prefix(&self, prefix: &[u8]) -> EngineIter {
        match prefix_end(prefix) {
            Some(end) => self.scan(Bound::Included(prefix), Bound::Excluded(&end)),
            None => self.scan(Bound::Included(prefix), Bound::Unbounded),
        }
    }

    /// Freezes the active memtable (if it holds anything) and waits until every batch applied
    /// so far is in a table.
    pub fn flush(&self) -> Result<()> {
        let target = {
            let applied = self.inner.applied.lock();
            self.freeze();
            *applied
        };
        loop {
            if let Some(e) = self.inner.failure() {
                return Err(e);
            }
            if self.flushed_index() >= target {
                return Ok(());
            }
            let listener = self.inner.flushed.listen();
            if self.flushed_index() >= target || self.inner.failure().is_some() {
                continue;
            }
            listener.wait();
        }
    }

    /// The last log index applied.
    pub fn applied_index(&self) -> u64 {
        *self.inner.applied.lock()
    }

    /// The last log index whose batches are all in tables: after a restart the engine holds
    /// exactly the batches up to here, and the caller re-applies the rest.
    pub fn flushed_index(&self) -> u64 {
        self.inner.flushed_index.load(Ordering::Acquire)
    }

    /// The error that stopped writes, if one did.
    pub fn failure(&self) -> Option<Error> {
        self.inner.failure()
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A snapshot of the engine's state and counters.
    pub fn stats(&self) -> EngineStats {
        let view = self.inner.view();
        let mut levels = [LevelStats::default(); crate::version::NUM_LEVELS];
        for (i, (files, bytes)) in view.version.level_summary().into_iter().enumerate() {
            levels[i] = LevelStats { files, bytes };
        }
        let c = &self.inner.counters;
        let r = &self.inner.reads;
        EngineStats {
            applied_index: self.applied_index(),
            flushed_index: self.flushed_index(),
            memtable_bytes: view.active.approx_bytes() as u64,
            immutable_memtables: view.immutables.len(),
            immutable_bytes: view
                .immutables
                .iter()
                .map(|m| m.approx_bytes() as u64)
                .sum(),
            flushes: Counters::get(&c.flushes),
            flushed_bytes: Counters::get(&c.flushed_bytes),
            levels,
            write_stalled: view.immutables.len() >= self.inner.opts.max_immutable_memtables,
            stalls: Counters::get(&c.stalls),
            stall_micros: Counters::get(&c.stall_micros),
            bloom_useful: r.bloom_useful.load(Ordering::Relaxed),
            bloom_false_positive: r.bloom_false_positive.load(Ordering::Relaxed),
        }
    }

    /// Checks every table's every block against its checksum.
    pub fn verify(&self) -> Result<()> {
        let view = self.inner.view();
        for f in view.version.levels.iter().flatten() {
            f.table.verify()?;
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Frozen memtables still get flushed; the active one is left to be re-applied. The
        // directory lock is released last, after the flush thread is gone.
        self.wake_flusher.lock().take();
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
    }
}

/// The first key after every key starting with `prefix`, or `None` if there is none.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Iterator over `(key, value)` pairs returned by [`Engine::scan`]. It reads a fixed snapshot:
/// batches applied after it was created are not seen.
pub struct EngineIter {
    inner: VisibleIter,
}

impl Iterator for EngineIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
