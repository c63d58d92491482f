//! The Raft log store: openraft's log on QAStore's write-ahead log.
//!
//! * `append` writes the entries into the active segment (readable at once) and hands the
//!   completion to the WAL's flusher, which calls it after the group fsync: `IOFlushed` never
//!   completes before the entries are on disk.
//! * `save_vote` goes through the same flusher, after every append made before it, and returns
//!   once durable (awaited, never blocking a runtime thread).
//! * `save_committed` records the committed log id and returns at once; the flusher writes it
//!   with the next durable metadata write or within a fraction of a second. Openraft awaits it
//!   before applying, so a durable write here would put an fsync between every commit and its
//!   apply (and stop openraft's core meanwhile); losing the last value in a crash costs only
//!   re-learning it from the leader before the newest entries are applied again.
//! * `truncate_after` and `purge` remove files and fsync directories, so they run on the
//!   blocking pool.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use futures::Stream;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use qastore_lsm::wal::{self, Wal};

use crate::codec;
use crate::error::to_io;
use crate::types::{log_id, Entry, LogId, TypeConfig, Vote};
use crate::write_stages::{Point, Timeline};

/// Entries read per step when streaming a long range (re-applying after a restart, say).
const STREAM_CHUNK: u64 = 1024;

/// The Raft log on a write-ahead log. Clones share it.
#[derive(Debug, Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
    max_batch_bytes: u64,
    timeline: Arc<Timeline>,
}

impl LogStore {
    /// A log store on `wal`.
    pub fn new(wal: Arc<Wal>) -> Self {
        LogStore {
            wal,
            max_batch_bytes: u64::MAX,
            timeline: Arc::default(),
        }
    }

    /// The same store, stamping on `timeline` when entries are appended and when they are
    /// durable.
    pub fn with_timeline(mut self, timeline: Arc<Timeline>) -> Self {
        self.timeline = timeline;
        self
    }

    /// The same store, handing replication at most `bytes` of entries per batch (an entry
    /// larger than that alone), so that one append stays small whatever the entries' sizes.
    pub fn with_max_batch_bytes(mut self, bytes: u64) -> Self {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// The write-ahead log underneath.
    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    /// The entries with indexes in `range` that the log holds (a prefix missing because it was
    /// purged, or a suffix not yet appended, is left out; a hole is an error).
    fn read(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry>> {
        self.read_frames(range)?
            .iter()
            .map(|e| codec::from_wal(e).map_err(to_io))
            .collect()
    }

    /// Like [`LogStore::read`], the entries as the log holds them (not decoded).
    fn read_frames(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<wal::WalEntry>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let (Some(first), Some(last)) = (self.wal.first_index(), self.wal.last_index()) else {
            return Ok(Vec::new());
        };
        let start = start.max(first);
        let end = end.min(last + 1);
        if start >= end {
            return Ok(Vec::new());
        }
        self.wal.read(start..end).map_err(to_io)
    }

    /// The first entries of `[start, end)` that fit in the batch budget, at least one.
    fn read_batch(&self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        // Windows of 1, 2, 4... entries: a batch of large entries stops at the budget without
        // reading far past it, one of small entries takes few reads.
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let (mut from, mut window) = (start, 1u64);
        while from < end {
            let to = end.min(from.saturating_add(window));
            let frames = self.read_frames(from..to)?;
            if frames.is_empty() {
                break;
            }
            for frame in &frames {
                let size = frame.payload.len() as u64;
                if !out.is_empty() && bytes.saturating_add(size) > self.max_batch_bytes {
                    return Ok(out);
                }
                bytes = bytes.saturating_add(size);
                out.push(codec::from_wal(frame).map_err(to_io)?);
            }
            if bytes >= self.max_batch_bytes {
                break;
            }
            from = to;
            window = window.saturating_mul(2);
        }
        Ok(out)
    }

    async fn durable(
        &self,
        start: impl FnOnce(Box<dyn FnOnce(qastore_lsm::Result<()>) + Send>) -> qastore_lsm::Result<()>,
    ) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        start(Box::new(move |r| {
            let _ = tx.send(r);
        }))
        .map_err(to_io)?;
        rx.await
            .map_err(|_| io::Error::other("write-ahead log closed"))?
            .map_err(to_io)
    }
}

fn to_wal_id(id: &LogId) -> wal::LogId {
    wal::LogId::new(id.leader_id.term, id.index)
}

fn from_wal_id(id: wal::LogId) -> LogId {
    log_id(id.term, id.index)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read(range)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        self.read_batch(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match self.wal.meta().vote {
            None => Ok(None),
            Some(b) => codec::decode_vote(&b).map(Some).map_err(to_io),
        }
    }

    async fn entries_stream<RB>(
        &mut self,
        range: RB,
    ) -> impl Stream<Item = Result<Entry, io::Error>> + OptionalSend
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        // In chunks, so that re-applying a long tail never holds all of it in memory.
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.wal.last_index().map_or(0, |l| l + 1),
        };
        let store = self.clone();
        let chunks = futures::stream::unfold(Some(start), move |next| {
            let store = store.clone();
            async move {
                let from = next?;
                if from >= end {
                    return None;
                }
                let to = end.min(from.saturating_add(STREAM_CHUNK));
                match store.read(from..to) {
                    Ok(entries) if entries.is_empty() => None,
                    Ok(entries) => Some((Ok(entries), Some(to))),
                    Err(e) => Some((Err(e), None)),
                }
            }
        });
        futures::StreamExt::flat_map(chunks, |chunk| {
            let items: Vec<Result<Entry, io::Error>> = match chunk {
                Ok(entries) => entries.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let meta = self.wal.meta();
        Ok(LogState {
            last_purged_log_id: meta.last_purged.map(from_wal_id),
            last_log_id: self.wal.last_log_id().map(from_wal_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = codec::encode_vote(vote);
        let wal = self.wal.clone();
        self.durable(move |done| wal.save_vote_then(bytes, done))
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let id = committed.as_ref().map(to_wal_id);
        self.wal.save_committed(id).map_err(to_io)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.wal.meta().committed.map(from_wal_id))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch: Vec<_> = entries.into_iter().map(|e| codec::to_wal(&e)).collect();
        // An empty batch still goes to the log: its completion waits for earlier appends.
        let span = batch
            .first()
            .zip(batch.last())
            .map(|(a, b)| (a.index, b.index));
        let now = std::time::Instant::now();
        if let Some((first, last)) = span {
            for index in first..=last {
                self.timeline.appended(index, now);
            }
        }
        let timeline = self.timeline.clone();
        self.wal
            .append(&batch, move |r| {
                if let (Ok(()), Some((first, last))) = (&r, span) {
                    timeline.range_passed(first, last, Point::Flushed, std::time::Instant::now());
                }
                callback.io_completed(r.map_err(to_io))
            })
            .map_err(to_io)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let wal = self.wal.clone();
        let from = last_log_id.map_or(0, |id| id.index + 1);
        tokio::task::spawn_blocking(move || wal.truncate_from(from))
            .await
            .map_err(to_io)?
            .map_err(to_io)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let wal = self.wal.clone();
        let id = to_wal_id(&log_id);
        tokio::task::spawn_blocking(move || wal.purge_up_to(id))
            .await
            .map_err(to_io)?
            .map_err(to_io)
    }
}

#[cfg(test)]
mod batch_tests;
