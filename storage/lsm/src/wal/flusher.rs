//! The flusher thread: group commit for appends and ordered metadata writes.
//!
//! Appends are written to the segment by the caller (so they are readable at once) and then
//! queued here. The flusher takes everything queued, fsyncs each touched segment once, renames
//! new segments into place (then fsyncs the directory), writes the metadata if it changed, and
//! only then completes every callback of the round in queue order. Metadata is written after
//! the data queued before it, so a vote never becomes durable ahead of earlier appends.
//!
//! A failed fsync (or any failed write here) is fatal: the page cache may no longer hold what we
//! wrote, so retrying could report lost data as durable. The WAL records the failure, fails
//! every pending and future callback, and accepts nothing more until reopened.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::meta::{MetaFile, WalMeta};
use super::stats::Counters;
use crate::error::{Error, Result};
use crate::vfs::{FileRef, VfsRef};

/// Called once an operation is durable, or with the error that stopped it.
pub type DurableCallback = Box<dyn FnOnce(Result<()>) + Send>;

/// How long a metadata change that does not need to be durable at once (the committed log id)
/// may wait for a write of its own.
const LAZY_META_DELAY: Duration = Duration::from_millis(100);

/// A new segment to move from its temporary name to its final one once it is durable.
#[derive(Debug)]
pub(crate) struct PendingRename {
    pub from: PathBuf,
    pub to: PathBuf,
    pub dir: PathBuf,
}

pub(crate) enum Command {
    /// Data was written to `file`; make it durable.
    Append {
        file: FileRef,
        rename: Option<PendingRename>,
        last_index: u64,
        done: DurableCallback,
    },
    /// The metadata changed to `meta`. With `done`, make it durable now; without, soon.
    Meta {
        meta: WalMeta,
        done: Option<DurableCallback>,
    },
    /// Complete `done` once everything queued before it is durable.
    Barrier { done: DurableCallback },
}

/// State shared between the WAL and its flusher.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    failure: Mutex<Option<Arc<Error>>>,
    pub counters: Counters,
}

impl Shared {
    /// The error that stopped the WAL, if any.
    pub fn failure(&self) -> Option<Error> {
        self.failure.lock().clone().map(Error::WalFailed)
    }

    /// Records a fatal error (the first one wins).
    pub fn fail(&self, err: Error) -> Error {
        let mut slot = self.failure.lock();
        let shared = slot.get_or_insert_with(|| Arc::new(err)).clone();
        Error::WalFailed(shared)
    }
}

struct Flusher {
    vfs: VfsRef,
    meta_file: MetaFile,
    shared: Arc<Shared>,
    lazy_meta: Option<(WalMeta, Instant)>,
}

/// Starts the flusher thread.
pub(crate) fn spawn(
    vfs: VfsRef,
    meta_file: MetaFile,
    shared: Arc<Shared>,
    rx: Receiver<Command>,
) -> Result<JoinHandle<()>> {
    let mut flusher = Flusher {
        vfs,
        meta_file,
        shared,
        lazy_meta: None,
    };
    std::thread::Builder::new()
        .name("qastore-wal-flush".into())
        .spawn(move || flusher.run(rx))
        .map_err(|e| Error::io("spawn", "qastore-wal-flush", e))
}

impl Flusher {
    fn run(&mut self, rx: Receiver<Command>) {
        loop {
            let first = match self.lazy_meta.as_ref() {
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
                Some((_, since)) => {
                    let wait = LAZY_META_DELAY.saturating_sub(since.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(c) => c,
                        Err(RecvTimeoutError::Timeout) => {
                            self.write_lazy_meta();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut group = vec![first];
            group.extend(rx.try_iter());
            self.round(group);
        }
        self.write_lazy_meta();
    }

    fn write_lazy_meta(&mut self) {
        if let Some((meta, _)) = self.lazy_meta.take() {
            if self.shared.failure().is_none() {
                if let Err(e) = self.write_meta(&meta) {
                    self.shared.fail(e);
                }
            }
        }
    }

    fn round(&mut self, group: Vec<Command>) {
        let c = &self.shared.counters;
        Counters::add(&c.groups, 1);
        c.largest_group
            .fetch_max(group.len() as u64, Ordering::Relaxed);
        let outcome = match self.shared.failure() {
            Some(e) => Err(e),
            None => self.make_durable(&group).map_err(|e| {
                tracing::error!(error = %e, "WAL write failed; the log is stopped");
                self.shared.fail(e)
            }),
        };
        for cmd in group {
            let done = match cmd {
                Command::Append { done, .. } | Command::Barrier { done } => Some(done),
                Command::Meta { done, .. } => done,
            };
            if let Some(done) = done {
                done(outcome.clone());
            }
        }
    }

    fn make_durable(&mut self, group: &[Command]) -> Result<()> {
        let started = Instant::now();
        let shared = self.shared.clone();
        let c = &shared.counters;
        let mut files: Vec<&FileRef> = Vec::new();
        let mut renames = Vec::new();
        let mut last_index = None;
        let mut latest_meta = None;
        let mut meta_urgent = false;
        for cmd in group {
            match cmd {
                Command::Append {
                    file,
                    rename,
                    last_index: idx,
                    ..
                } => {
                    if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
                        files.push(file);
                    }
                    renames.extend(rename.iter());
                    last_index = Some(*idx);
                }
                Command::Meta { meta, done } => {
                    latest_meta = Some(meta);
                    meta_urgent |= done.is_some();
                }
                Command::Barrier { .. } => {}
            }
        }
        // Older segments come first in `files`, so a sealed segment is durable before the one
        // after it is renamed into place.
        for file in &files {
            file.sync_data()?;
        }
        Counters::add(&c.segment_syncs, files.len() as u64);
        for r in &renames {
            self.vfs.rename(&r.from, &r.to)?;
        }
        if let Some(r) = renames.last() {
            self.vfs.sync_dir(&r.dir)?;
            Counters::add(&c.dir_syncs, 1);
        }
        if let Some(meta) = latest_meta {
            if meta_urgent {
                self.lazy_meta = None;
                self.write_meta(meta)?;
            } else if self.lazy_meta.is_none() {
                self.lazy_meta = Some((meta.clone(), Instant::now()));
            } else if let Some((pending, _)) = self.lazy_meta.as_mut() {
                *pending = meta.clone();
            }
        }
        let elapsed = started.elapsed();
        let nanos = elapsed.as_nanos() as u64;
        // A facade: a no-op unless the process installed a metrics recorder.
        metrics::histogram!("qastore_wal_fsync_seconds").record(elapsed.as_secs_f64());
        Counters::add(&c.fsync_nanos, nanos);
        c.max_fsync_nanos.fetch_max(nanos, Ordering::Relaxed);
        if let Some(idx) = last_index {
            c.durable_index.fetch_max(idx, Ordering::Release);
        }
        Ok(())
    }

    fn write_meta(&mut self, meta: &WalMeta) -> Result<()> {
        self.meta_file.write(meta)?;
        Counters::add(&self.shared.counters.meta_writes, 1);
        Ok(())
    }
}
