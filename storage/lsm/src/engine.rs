//! The engine facade: apply batches, read, flush, report.
//!
//! Writes arrive as batches tagged with their Raft log index. A batch is inserted into the
//! active memtable and becomes visible at once and whole: readers take the snapshot "everything
//! up to the last applied index" (`snapshot_at(index)`), so they never see part of a batch.
//! Between batches, a full memtable is frozen into the immutable queue and a background thread
//! writes it to a level-0 table and records that in the manifest; compaction threads merge
//! tables down the levels (see [`crate::compaction`]), and writers are slowed down, then
//! stopped, when flushing or compaction falls behind.
//!
//! The engine has no WAL: what is not yet in a table is lost in a crash, and after a restart
//! [`Engine::flushed_index`] tells the caller from which log index to re-apply.

mod compact;
mod config;
mod flush;
mod read;
mod stats;
mod wakeup;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use event_listener::{Event, Listener};
use parking_lot::{Mutex, RwLock};

pub use crate::compaction::WritePressure;
pub use config::EngineConfig;
pub use read::{EngineIter, ReadView};
pub use stats::{EngineStats, LevelStats};

use crate::batch::{BatchOp, WriteBatch};
use crate::compaction::{picker, pressure};
use crate::error::{Error, InvalidArgument, Result};
use crate::ikey::{index_of, seq_of, snapshot_at, ValueKind, MAX_LOG_INDEX};
use crate::memtable::{pack_values, Memtable};
use crate::version::{ReadCounters, Version, NUM_LEVELS};
use crate::version_set::VersionSet;
use crate::vfs::{FileLock, VfsRef, LOCK_FILE};
use compact::CompactionState;
use stats::Counters;
use wakeup::Wakeup;

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
    opts: EngineConfig,
    /// Serializes appliers; holds the last applied index.
    applied: Mutex<u64>,
    /// Readers' snapshot: every batch up to the last applied index.
    visible_seq: AtomicU64,
    flushed_index: AtomicU64,
    view: RwLock<Arc<View>>,
    /// Lock order: `versions` before `view`.
    versions: Mutex<VersionSet>,
    /// Signalled whenever a flush or compaction finishes, or the engine fails.
    progress: Event,
    failure: Mutex<Option<Arc<Error>>>,
    counters: Counters,
    reads: ReadCounters,
    flush_wakeup: Wakeup,
    compact_wakeup: Wakeup,
    compaction: Mutex<CompactionState>,
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
        self.progress.notify(usize::MAX);
    }

    /// Installs a version for readers. Callers hold the version-set lock, so versions from
    /// flushes and compactions reach readers in the order they were made.
    fn publish(&self, version: Arc<Version>) {
        let mut view = self.view.write();
        *view = Arc::new(View {
            active: view.active.clone(),
            immutables: view.immutables.clone(),
            version,
        });
    }

    fn pressure(&self) -> WritePressure {
        let view = self.view();
        let queue_full = view.immutables.len() >= self.opts.max_immutable_memtables;
        pressure::pressure(
            &view.version,
            &self.opts.level_shape(),
            &self.opts.pressure_limits(),
            queue_full,
        )
    }
}

/// A single-node LSM storage engine. Thread-safe: any number of readers, and appliers that are
/// serialized internally.
pub struct Engine {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
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
    pub fn open(vfs: VfsRef, dir: impl AsRef<Path>, opts: EngineConfig) -> Result<Engine> {
        opts.validate()?;
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
            progress: Event::new(),
            failure: Mutex::new(None),
            counters: Counters::default(),
            reads: ReadCounters::default(),
            flush_wakeup: Wakeup::default(),
            compact_wakeup: Wakeup::default(),
            compaction: Mutex::new(CompactionState::default()),
        });
        let mut threads = Vec::new();
        let nice = inner.opts.background_nice;
        let spawn = |name: String, body: fn(Arc<Inner>)| {
            let worker = inner.clone();
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    crate::background::run_nicer(nice);
                    body(worker)
                })
                .map_err(|e| Error::io("spawn", name, e))
        };
        let mut start = || -> Result<()> {
            threads.push(spawn("qastore-flush".into(), flush::run)?);
            for i in 0..inner.opts.compaction_threads.max(1) {
                threads.push(spawn(format!("qastore-compact-{i}"), compact::worker)?);
            }
            Ok(())
        };
        if let Err(e) = start() {
            shutdown(&inner, &mut threads);
            return Err(e);
        }
        // Work left over from before (an L0 past its trigger) starts now.
        inner.compact_wakeup.raise();
        tracing::info!(flushed_index, "engine opened");
        Ok(Engine {
            inner,
            threads,
            _lock: lock,
        })
    }

    /// Applies `batch` as the entry at `log_index`, which must be above every index applied
    /// before. Operation `i` gets sequence number `log_index << 16 | i` (in batches of more than
    /// 65,536 operations, `i` counts only operations on the same key); the batch becomes visible
    /// whole. Bad input is refused before anything changes.
    ///
    /// This may block for back-pressure: a short delay while compaction is behind, or a wait
    /// for a flush or compaction when a stop threshold is reached (see [`WritePressure`]).
    /// Call it off the async runtime; async callers can await [`Engine::write_room`] first.
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
        let ordinals = batch.ordinals()?;
        self.yield_to_pressure()?;
        let view = self.inner.view();
        let mut user_bytes = 0;
        let values = pack_values(batch);
        for ((op, ordinal), value) in batch.ops().iter().zip(ordinals).zip(values) {
            let seq = seq_of(log_index, ordinal);
            user_bytes += op.key().len() + value.len();
            let kind = match op {
                BatchOp::Put { .. } => ValueKind::Put,
                BatchOp::Delete { .. } => ValueKind::Delete,
            };
            view.active.insert(op.key(), seq, kind, value);
        }
        Counters::add(&self.inner.counters.user_bytes, user_bytes as u64);
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
        self.inner.flush_wakeup.raise();
    }

    /// What a write faces right now: nothing, a delay, or a wait.
    pub fn write_pressure(&self) -> WritePressure {
        self.inner.pressure()
    }

    /// Whether writes would wait for a flush or compaction right now.
    pub fn write_stalled(&self) -> bool {
        self.inner.pressure() == WritePressure::Stop
    }

    /// Resolves once a write would not have to stop for a flush or compaction (or the engine
    /// has failed). A write may still be delayed a little while compaction is behind.
    /// The wait counts as a stop in the stats, as if [`Engine::apply`] had waited itself.
    pub async fn write_room(&self) {
        if !self.write_stalled() || self.inner.failure().is_some() {
            return;
        }
        let started = Instant::now();
        tracing::debug!("write waiting for a flush or compaction");
        loop {
            let listener = self.inner.progress.listen();
            if !self.write_stalled() || self.inner.failure().is_some() {
                break;
            }
            listener.await;
        }
        let c = &self.inner.counters;
        Counters::add(&c.stops, 1);
        Counters::add(&c.stop_micros, started.elapsed().as_micros() as u64);
    }

    /// Waits out the current back-pressure, counting the time in the stats.
    fn yield_to_pressure(&self) -> Result<()> {
        let c = &self.inner.counters;
        if self.inner.pressure() == WritePressure::Stop {
            let started = Instant::now();
            tracing::debug!("write waiting for a flush or compaction");
            loop {
                if let Some(e) = self.inner.failure() {
                    return Err(e);
                }
                let listener = self.inner.progress.listen();
                if self.inner.pressure() != WritePressure::Stop {
                    break;
                }
                listener.wait();
            }
            Counters::add(&c.stops, 1);
            Counters::add(&c.stop_micros, started.elapsed().as_micros() as u64);
        }
        if let WritePressure::Slowdown(delay) = self.inner.pressure() {
            std::thread::sleep(delay);
            Counters::add(&c.slowdowns, 1);
            Counters::add(&c.slowdown_micros, delay.as_micros() as u64);
        }
        Ok(())
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
            let listener = self.inner.progress.listen();
            if self.flushed_index() >= target || self.inner.failure().is_some() {
                continue;
            }
            listener.wait();
        }
    }

    /// Flushes, then compacts every level down into the deepest one holding data, dropping
    /// overwritten versions and deletes. Runs in the calling thread (it can take long).
    pub fn compact_all(&self) -> Result<()> {
        self.flush()?;
        self.inner.compact_all()
    }

    /// Waits until no flush is queued and no compaction is running or needed.
    pub fn wait_for_compactions(&self) -> Result<()> {
        loop {
            if let Some(e) = self.inner.failure() {
                return Err(e);
            }
            let listener = self.inner.progress.listen();
            if self.inner.view().immutables.is_empty() && self.inner.compaction_idle() {
                return Ok(());
            }
            self.inner.compact_wakeup.raise();
            // Progress is signalled after every flush and compaction; the timeout only guards
            // against a wake-up that raced with the checks above.
            listener.wait_timeout(std::time::Duration::from_millis(100));
        }
    }

    /// The live tables, level by level.
    pub fn tables(&self) -> Vec<TableInfo> {
        let view = self.inner.view();
        view.version
            .levels
            .iter()
            .enumerate()
            .flat_map(|(level, files)| {
                files.iter().map(move |f| TableInfo {
                    level,
                    number: f.desc.number,
                    size: f.desc.size,
                    entries: f.desc.entries,
                    smallest_key: Bytes::copy_from_slice(f.smallest_user_key()),
                    largest_key: Bytes::copy_from_slice(f.largest_user_key()),
                })
            })
            .collect()
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

    /// The file system the engine works on.
    pub fn vfs(&self) -> &VfsRef {
        &self.inner.vfs
    }

    /// A snapshot of the engine's state and counters.
    pub fn stats(&self) -> EngineStats {
        let view = self.inner.view();
        let shape = self.inner.opts.level_shape();
        let scores = picker::scores(&view.version, &shape);
        let mut levels = [LevelStats::default(); NUM_LEVELS];
        for (i, (files, bytes)) in view.version.level_summary().into_iter().enumerate() {
            levels[i] = LevelStats {
                files,
                bytes,
                score: scores.get(i).copied().unwrap_or(0.0),
            };
        }
        let c = &self.inner.counters;
        let r = &self.inner.reads;
        let user_bytes = Counters::get(&c.user_bytes);
        let table_bytes =
            Counters::get(&c.flushed_bytes) + Counters::get(&c.compaction_bytes_written);
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
            compactions: Counters::get(&c.compactions),
            trivial_moves: Counters::get(&c.trivial_moves),
            compaction_bytes_read: Counters::get(&c.compaction_bytes_read),
            compaction_bytes_written: Counters::get(&c.compaction_bytes_written),
            user_bytes,
            write_amplification: if user_bytes == 0 {
                0.0
            } else {
                table_bytes as f64 / user_bytes as f64
            },
            pending_compaction_bytes: pressure::pending_compaction_bytes(&view.version, &shape),
            write_pressure: self.inner.pressure(),
            slowdowns: Counters::get(&c.slowdowns),
            slowdown_micros: Counters::get(&c.slowdown_micros),
            stops: Counters::get(&c.stops),
            stop_micros: Counters::get(&c.stop_micros),
            levels,
            bloom_useful: r.bloom_useful.load(Ordering::Relaxed),
            bloom_false_positive: r.bloom_false_positive.load(Ordering::Relaxed),
        }
    }

    /// Writes a checkpoint of the last flushed state into the new directory `dir`: hard links
    /// to the live tables, a manifest, and a metadata file with the log index it covers
    /// ([`Engine::flushed_index`] at that moment) and `blob`. Writes continue meanwhile. Call
    /// [`Engine::flush`] first for a checkpoint of everything applied. The directory opens as
    /// an engine of its own.
    pub fn checkpoint(
        &self,
        dir: impl AsRef<Path>,
        blob: Bytes,
    ) -> Result<crate::checkpoint::CheckpointInfo> {
        self.checkpoint_with(dir, &[], |_| Ok(blob))
    }

    /// Like [`Engine::checkpoint`], with the blob made by `make_blob` from the checkpoint's own
    /// contents: its argument reads a key as the checkpoint holds it. The Raft layer records the
    /// applied log id and membership this way, exactly as of the checkpoint's log index, while
    /// writes go on.
    ///
    /// The checkpoint also carries every file under `extra_dirs`, directories relative to the
    /// engine's that its owner keeps beside the tables (files being written, named `*.tmp`,
    /// are left out). The engine does not know what they hold: the caller keeps them still
    /// while they are copied, typically by holding its own lock around this call.
    pub fn checkpoint_with(
        &self,
        dir: impl AsRef<Path>,
        extra_dirs: &[&str],
        make_blob: impl FnOnce(&dyn Fn(&[u8]) -> Result<Option<Bytes>>) -> Result<Bytes>,
    ) -> Result<crate::checkpoint::CheckpointInfo> {
        crate::checkpoint::check_extra_dirs(extra_dirs)?;
        let (version, flushed_seq) = {
            let versions = self.inner.versions.lock();
            (versions.current(), versions.flushed_seq())
        };
        let read = |key: &[u8]| -> Result<Option<Bytes>> {
            Ok(match version.get(key, flushed_seq, &self.inner.reads)? {
                Some(crate::memtable::Lookup::Value(v)) => Some(v),
                _ => None,
            })
        };
        let blob = make_blob(&read)?;
        let span = tracing::info_span!("checkpoint", dir = %dir.as_ref().display());
        let _enter = span.enter();
        let mut extra_files = Vec::new();
        for extra in extra_dirs {
            let root = self.inner.dir.join(extra);
            if !self.inner.vfs.exists(&root)? {
                continue;
            }
            extra_files.extend(
                crate::vfs::walk_files(self.inner.vfs.as_ref(), &root)?
                    .into_iter()
                    .filter(|f| !f.ends_with(".tmp"))
                    .map(|f| format!("{extra}/{f}")),
            );
        }
        crate::checkpoint::create::write(
            self.inner.vfs.as_ref(),
            &self.inner.dir,
            dir.as_ref(),
            &version,
            flushed_seq,
            crate::checkpoint::create::Extras {
                dirs: extra_dirs,
                files: &extra_files,
            },
            blob,
        )
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
        // Running compactions give up, frozen memtables still get flushed; the active one is
        // left to be re-applied. The directory lock is released last.
        shutdown(&self.inner, &mut self.threads);
    }
}

fn shutdown(inner: &Inner, threads: &mut Vec<JoinHandle<()>>) {
    inner.compact_wakeup.shutdown();
    inner.flush_wakeup.shutdown();
    for t in threads.drain(..) {
        let _ = t.join();
    }
}

/// One live table, as [`Engine::tables`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Its level.
    pub level: usize,
    /// Its file number.
    pub number: u64,
    /// File size in bytes.
    pub size: u64,
    /// Key versions it holds.
    pub entries: u64,
    /// Smallest user key.
    pub smallest_key: Bytes,
    /// Largest user key.
    pub largest_key: Bytes,
}

impl TableInfo {
    /// The name of its file in the engine's directory.
    pub fn file_name(&self) -> String {
        crate::filenames::table_name(self.number)
    }
}
