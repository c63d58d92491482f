//! The write-ahead log: the durable log the Raft log store sits on.
//!
//! Entries live in segment files (`segment.rs`), the vote / committed / purged log ids in a
//! separate double-buffered metadata file (`meta.rs`), and durability comes from one flusher
//! thread that group-commits (`flusher.rs`).
//!
//! * [`Wal::append`] writes the entries and returns at once: they are readable immediately, and
//!   the callback runs on the flusher thread once they are fsynced (or with the error that
//!   stopped the WAL).
//! * [`Wal::truncate_after`] and [`Wal::purge_up_to`] are durable when they return.
//! * [`Wal::open`] recovers: a torn tail of the last segment is cut (with a warning); any other
//!   damage fails with the file and byte offset.

mod entry;
mod flusher;
pub(crate) mod meta;
mod recent;
mod recovery;
pub(crate) mod segment;
mod stats;

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

pub use entry::{LogId, WalEntry};
pub use flusher::DurableCallback;
pub use meta::{WalMeta, MAX_VOTE_BYTES, META_FILE};
pub use segment::{segment_name, SEGMENT_HEADER, SEGMENT_VERSION};
pub use stats::WalStats;

use crate::error::{Error, InvalidArgument, Result};
use crate::frame::{begin_frame, end_frame, FRAME_HEADER, MAX_FRAME_PAYLOAD};
use crate::vfs::{temp_path, FileLock, VfsRef, LOCK_FILE};
use entry::ENTRY_FIXED;
use flusher::{Command, PendingRename, Shared};
use meta::MetaFile;
use recent::{Recent, RECENT_BYTES};
use segment::{parse_segment_name, EntryLoc, Segment};

/// Settings of a WAL.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// A segment is closed and a new one started once it would grow past this size.
    pub segment_bytes: u64,
    /// The largest payload one entry may carry.
    pub max_entry_bytes: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: 64 << 20,
            max_entry_bytes: 64 << 20,
        }
    }
}

impl WalConfig {
    /// Checks that the options can work: a zero segment size would start a segment file for
    /// every append, and a zero entry limit would refuse every entry.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str| -> Result<()> {
            Err(InvalidArgument::BadOption {
                name,
                reason: "must be above zero".into(),
            }
            .into())
        };
        if self.segment_bytes == 0 {
            return bad("segment_bytes");
        }
        if self.max_entry_bytes == 0 {
            return bad("max_entry_bytes");
        }
        Ok(())
    }
}

struct State {
    segments: VecDeque<Segment>,
    meta: WalMeta,
    /// The newest entries as appended, read back without touching the files.
    recent: Recent,
}

impl State {
    fn purged_index(&self) -> Option<u64> {
        self.meta.last_purged.map(|id| id.index)
    }

    /// The last entry physically held, purged or not.
    fn last_physical(&self) -> Option<(u64, u64)> {
        self.segments.iter().rev().find_map(|s| {
            let last = s.last_index()?;
            Some((last, s.entries.last()?.term))
        })
    }

    fn first_index(&self) -> Option<u64> {
        let (last, _) = self.last_physical()?;
        let first_held = self.segments.front()?.first_index;
        let first = match self.purged_index() {
            Some(p) => first_held.max(p + 1),
            None => first_held,
        };
        (first <= last).then_some(first)
    }

    fn last_index(&self) -> Option<u64> {
        let (last, _) = self.last_physical()?;
        match self.purged_index() {
            Some(p) if last <= p => None,
            _ => Some(last),
        }
    }

    /// The index the next append must start at, if the log constrains it.
    fn next_index(&self) -> Option<u64> {
        match (self.last_physical(), self.purged_index()) {
            (Some((last, _)), Some(p)) => Some(last.max(p) + 1),
            (Some((last, _)), None) => Some(last + 1),
            (None, Some(p)) => Some(p + 1),
            (None, None) => None,
        }
    }

    fn segment_of(&self, index: u64) -> Option<&Segment> {
        let pos = self
            .segments
            .partition_point(|s| s.first_index <= index)
            .checked_sub(1)?;
        let seg = &self.segments[pos];
        seg.loc(index).map(|_| seg)
    }
}

/// The write-ahead log. Thread-safe; appends are serialized internally.
pub struct Wal {
    vfs: VfsRef,
    dir: PathBuf,
    opts: WalConfig,
    state: RwLock<State>,
    tx: Mutex<Option<Sender<Command>>>,
    flusher: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    _lock: FileLock,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

impl Wal {
    /// Opens the WAL in `dir`, creating it if the directory holds none, and recovers it.
    pub fn open(vfs: VfsRef, dir: impl AsRef<Path>, opts: WalConfig) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        let span = tracing::info_span!("wal_open", dir = %dir.display());
        let _enter = span.enter();
        vfs.create_dir_all(&dir)?;
        let lock = vfs.lock(&dir.join(LOCK_FILE))?;
        let shared = Arc::new(Shared::default());

        let mut seg_names = Vec::new();
        for name in vfs.list(&dir)? {
            if name.ends_with(".tmp") {
                // A segment never renamed into place held nothing acknowledged.
                tracing::info!(file = %name, "removing unfinished file");
                vfs.remove(&dir.join(&name))?;
            } else if let Some(first) = parse_segment_name(&name) {
                seg_names.push((first, name));
            }
        }
        seg_names.sort();

        let meta_path = MetaFile::path(&dir);
        let (meta_file, meta) = if vfs.exists(&meta_path)? {
            MetaFile::open(vfs.as_ref(), &dir)?
        } else if let Some((_, name)) = seg_names.first() {
            return Err(Error::corruption(
                dir.join(name),
                0,
                format!("log segments exist but {META_FILE} is missing"),
            ));
        } else {
            let meta = WalMeta::default();
            (MetaFile::create(vfs.as_ref(), &dir, &meta)?, meta)
        };

        let segments = recovery::recover_segments(&vfs, &dir, &seg_names, &meta, &shared)?;
        let state = State {
            segments,
            meta,
            recent: Recent::new(RECENT_BYTES),
        };
        if let Some(last) = state.last_index() {
            shared.counters.durable_index.store(last, Ordering::Relaxed);
        }
        tracing::info!(
            first = ?state.first_index(),
            last = ?state.last_index(),
            purged = ?state.meta.last_purged,
            "WAL opened"
        );

        let (tx, rx) = mpsc::channel();
        let flusher = flusher::spawn(vfs.clone(), meta_file, shared.clone(), rx)?;
        Ok(Wal {
            vfs,
            dir,
            opts,
            state: RwLock::new(state),
            tx: Mutex::new(Some(tx)),
            flusher: Some(flusher),
            shared,
            _lock: lock,
        })
    }

    fn send(&self, cmd: Command) -> Result<()> {
        let tx = self.tx.lock();
        match tx.as_ref().map(|tx| tx.send(cmd)) {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Closed("write-ahead log")),
        }
    }

    fn check_running(&self) -> Result<()> {
        match self.shared.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Appends `entries`, which must continue the log without a gap. Returns once they are
    /// written and readable; `on_durable` runs on the flusher thread once they are fsynced, or
    /// with the error that stopped the WAL. It must be quick (hand the result to a channel) and
    /// must not call back into the WAL.
    ///
    /// An error returned here means nothing was appended and `on_durable` is not called.
    pub fn append(
        &self,
        entries: &[WalEntry],
        on_durable: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        let mut st = self.state.write();
        self.check_running()?;
        let Some(first) = entries.first() else {
            return self.send(Command::Barrier {
                done: Box::new(on_durable),
            });
        };
        self.validate(&st, entries)?;

        let size: usize = entries
            .iter()
            .map(|e| FRAME_HEADER + ENTRY_FIXED + e.payload.len())
            .sum();
        let mut buf = Vec::with_capacity(size);
        let mut locs = Vec::with_capacity(entries.len());
        for e in entries {
            let start = begin_frame(&mut buf);
            e.encode_into(&mut buf);
            end_frame(&mut buf, start);
            locs.push(EntryLoc {
                offset: start as u64,
                len: (buf.len() - start) as u32,
                term: e.term,
            });
        }

        let needs_new = match st.segments.back() {
            None => true,
            Some(seg) => {
                seg.next_index() != first.index
                    || (!seg.entries.is_empty()
                        && seg.size + buf.len() as u64 > self.opts.segment_bytes)
            }
        };
        let rename = if needs_new {
            let (seg, rename) = self.new_segment(first.index)?;
            st.segments.push_back(seg);
            Some(rename)
        } else {
            None
        };
        let Some(seg) = st.segments.back_mut() else {
            return Err(Error::Closed("write-ahead log"));
        };
        if let Err(e) = seg.file.write_at(seg.size, &buf) {
            // Part of the buffer may sit in the page cache beyond what we track; rather than
            // reason about it, stop like a failed fsync does.
            return Err(self.shared.fail(e));
        }
        let base = seg.size;
        seg.entries.extend(locs.into_iter().map(|mut l| {
            l.offset += base;
            l
        }));
        seg.size += buf.len() as u64;
        let file = seg.file.clone();
        st.recent.push(entries);

        let c = &self.shared.counters;
        stats::Counters::add(&c.appends, 1);
        stats::Counters::add(&c.entries, entries.len() as u64);
        stats::Counters::add(&c.bytes, buf.len() as u64);
        let last_index = first.index + entries.len() as u64 - 1;
        self.send(Command::Append {
            file,
            rename,
            last_index,
            done: Box::new(on_durable),
        })
    }

    /// Appends and waits until the entries are durable.
    pub fn append_sync(&self, entries: &[WalEntry]) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.append(entries, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().map_err(|_| Error::Closed("write-ahead log"))?
    }

    fn validate(&self, st: &State, entries: &[WalEntry]) -> Result<()> {
        let mut expected = st.next_index();
        let mut prev_term = match (st.last_index(), st.last_physical()) {
            (Some(_), Some((_, term))) => term,
            _ => st.meta.last_purged.map_or(0, |id| id.term),
        };
        let max = self
            .opts
            .max_entry_bytes
            .min(MAX_FRAME_PAYLOAD - ENTRY_FIXED);
        for e in entries {
            if let Some(exp) = expected {
                if e.index != exp {
                    return Err(InvalidArgument::NonContiguous {
                        index: e.index,
                        expected: exp,
                    }
                    .into());
                }
            }
            if e.payload.len() > max {
                return Err(InvalidArgument::EntryTooLarge {
                    index: e.index,
                    len: e.payload.len(),
                    max,
                }
                .into());
            }
            if e.term < prev_term {
                return Err(InvalidArgument::TermRegressed {
                    index: e.index,
                    term: e.term,
                    previous: prev_term,
                }
                .into());
            }
            prev_term = e.term;
            expected = Some(e.index + 1);
        }
        Ok(())
    }

    /// Creates a new segment under its temporary name; the flusher renames it into place once
    /// everything before it is durable.
    fn new_segment(&self, first_index: u64) -> Result<(Segment, PendingRename)> {
        let path = self.dir.join(segment_name(first_index));
        let tmp = temp_path(&path);
        if self.vfs.exists(&tmp)? {
            self.vfs.remove(&tmp)?;
        }
        let file = self.vfs.create(&tmp)?;
        if let Err(e) = file.write_at(0, &segment::encode_header(first_index)) {
            return Err(self.shared.fail(e));
        }
        let seg = Segment {
            first_index,
            path: path.clone(),
            file,
            entries: Vec::new(),
            size: SEGMENT_HEADER as u64,
        };
        Ok((
            seg,
            PendingRename {
                from: tmp,
                to: path,
                dir: self.dir.clone(),
            },
        ))
    }

    /// Reads the entries with indexes in `range`. Every frame's checksum is verified.
    pub fn read(&self, range: Range<u64>) -> Result<Vec<WalEntry>> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let mut chunks = Vec::new();
        {
            let st = self.state.read();
            let (first, last) = match (st.first_index(), st.last_index()) {
                (Some(f), Some(l)) if range.start >= f && range.end <= l + 1 => (f, l),
                (f, l) => {
                    return Err(InvalidArgument::OutOfLog {
                        from: range.start,
                        to: range.end,
                        first: f.unwrap_or(0),
                        last: l.unwrap_or(0),
                    }
                    .into())
                }
            };
            if let Some(held) = st.recent.get(&range) {
                return Ok(held);
            }
            debug_assert!(first <= last);
            let mut index = range.start;
            while index < range.end {
                let seg = st
                    .segment_of(index)
                    .ok_or(Error::Closed("write-ahead log segment"))?;
                let end = range.end.min(seg.next_index());
                let (Some(a), Some(b)) = (seg.loc(index), seg.loc(end - 1)) else {
                    return Err(Error::Closed("write-ahead log segment"));
                };
                let start_off = a.offset;
                let len = b.offset + u64::from(b.len) - start_off;
                chunks.push((
                    seg.file.clone(),
                    seg.path.clone(),
                    start_off,
                    len,
                    index,
                    (end - index) as usize,
                ));
                index = end;
            }
        }
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        for (file, path, offset, len, first, count) in chunks {
            let mut buf = vec![0u8; len as usize];
            file.read_at(offset, &mut buf)?;
            out.extend(segment::decode_entries(
                &path,
                offset,
                Bytes::from(buf),
                first,
                count,
            )?);
        }
        Ok(out)
    }

    /// The first index held (after purges), or `None` if the log is empty.
    pub fn first_index(&self) -> Option<u64> {
        self.state.read().first_index()
    }

    /// The last index held, or `None` if the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        self.state.read().last_index()
    }

    /// The id of the last entry, or of the last purged one if the log is empty.
    pub fn last_log_id(&self) -> Option<LogId> {
        let st = self.state.read();
        match (st.last_index(), st.last_physical()) {
            (Some(_), Some((index, term))) => Some(LogId::new(term, index)),
            _ => st.meta.last_purged,
        }
    }

    /// The term of the entry at `index`, if the log holds it.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        let st = self.state.read();
        if st.purged_index().is_some_and(|p| index <= p) {
            return None;
        }
        st.segment_of(index)?.loc(index).map(|l| l.term)
    }

    /// The highest index known to be durable (0 before the first).
    pub fn durable_index(&self) -> u64 {
        self.shared.counters.durable_index.load(Ordering::Acquire)
    }

    /// Waits until everything appended before the call is durable.
    pub fn sync(&self) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Barrier {
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        })?;
        rx.recv().map_err(|_| Error::Closed("write-ahead log"))?
    }

    /// Removes every entry after `index`, durably, before returning. New appends then continue
    /// at `index + 1`; a crash never brings the cut entries back.
    pub fn truncate_after(&self, index: u64) -> Result<()> {
        self.truncate_from(index.saturating_add(1))
    }

    /// Removes every entry at `from` and after, durably (see [`Wal::truncate_after`]).
    pub fn truncate_from(&self, from: u64) -> Result<()> {
        let mut st = self.state.write();
        self.check_running()?;
        st.recent.truncate_from(from);
        // Everything queued must be durable first, so no later flush touches what we cut.
        self.sync()?;
        let Some((last, _)) = st.last_physical() else {
            return Ok(());
        };
        if from > last {
            return Ok(());
        }
        if let Some(p) = st.purged_index() {
            if from <= p {
                return Err(InvalidArgument::OutOfLog {
                    from,
                    to: last + 1,
                    first: p + 1,
                    last,
                }
                .into());
            }
        }
        let span = tracing::info_span!("wal_truncate", from, last);
        let _enter = span.enter();
        // Whole segments go first, newest first, so that a crash part-way leaves a log without
        // a gap; the directory fsync makes their removal durable.
        let mut removed_any = false;
        while st.segments.back().is_some_and(|s| s.first_index >= from) {
            if let Some(seg) = st.segments.pop_back() {
                self.vfs
                    .remove(&seg.path)
                    .map_err(|e| self.shared.fail(e))?;
                removed_any = true;
            }
        }
        if removed_any {
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|e| self.shared.fail(e))?;
            stats::Counters::add(&self.shared.counters.dir_syncs, 1);
        }
        if let Some(seg) = st.segments.back_mut() {
            if let Some(loc) = seg.loc(from).copied() {
                seg.file
                    .set_len(loc.offset)
                    .and_then(|()| seg.file.sync_data())
                    .map_err(|e| self.shared.fail(e))?;
                stats::Counters::add(&self.shared.counters.segment_syncs, 1);
                seg.entries.truncate((from - seg.first_index) as usize);
                seg.size = loc.offset;
            }
        }
        self.shared
            .counters
            .durable_index
            .fetch_min(from.saturating_sub(1), Ordering::Release);
        tracing::info!("log truncated");
        Ok(())
    }

    /// Records `log_id` as the last purged entry (durably) and deletes every segment whose
    /// entries are all at or below it (the active one too, if the purge passes its end: the
    /// next append then starts a new segment).
    pub fn purge_up_to(&self, log_id: LogId) -> Result<()> {
        let mut st = self.state.write();
        self.check_running()?;
        if st.purged_index().is_some_and(|p| log_id.index <= p) {
            return Ok(());
        }
        st.meta.last_purged = Some(log_id);
        self.write_meta_sync(st.meta.clone())?;
        while st
            .segments
            .front()
            .is_some_and(|s| s.fully_purged(log_id.index))
        {
            if let Some(seg) = st.segments.pop_front() {
                // If this removal is lost in a crash, open() drops the segment again.
                self.vfs
                    .remove(&seg.path)
                    .map_err(|e| self.shared.fail(e))?;
            }
        }
        tracing::debug!(purged = log_id.index, "log purged");
        Ok(())
    }

    /// Durably stores the vote (opaque bytes, at most [`MAX_VOTE_BYTES`]). The write is ordered
    /// after every append made before it.
    pub fn save_vote(&self, vote: Bytes) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.save_vote_then(vote, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().map_err(|_| Error::Closed("write-ahead log"))?
    }

    /// Stores the vote and returns at once: readable immediately, durable when `on_durable`
    /// runs (on the flusher thread, after every append made before it). An error returned here
    /// means nothing changed and `on_durable` is not called.
    pub fn save_vote_then(
        &self,
        vote: Bytes,
        on_durable: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        let mut st = self.state.write();
        self.check_running()?;
        let mut meta = st.meta.clone();
        meta.vote = Some(vote);
        meta.validate()?;
        st.meta = meta.clone();
        self.send(Command::Meta {
            meta,
            done: Some(Box::new(on_durable)),
        })
    }

    /// Records the committed log id. It is written soon (with the next metadata write or within
    /// a fraction of a second), not necessarily before this returns: losing it in a crash only
    /// makes the node re-learn it from the leader.
    pub fn save_committed(&self, committed: Option<LogId>) -> Result<()> {
        let mut st = self.state.write();
        self.check_running()?;
        st.meta.committed = committed;
        let meta = st.meta.clone();
        self.send(Command::Meta { meta, done: None })
    }

    fn write_meta_sync(&self, meta: WalMeta) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Meta {
            meta,
            done: Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        })?;
        rx.recv().map_err(|_| Error::Closed("write-ahead log"))?
    }

    /// The vote, committed and purged log ids as last stored.
    pub fn meta(&self) -> WalMeta {
        self.state.read().meta.clone()
    }

    /// The WAL's counters.
    pub fn stats(&self) -> WalStats {
        let segments = self.state.read().segments.len() as u64;
        self.shared.counters.snapshot(segments)
    }

    /// The error that stopped the WAL, if one did.
    pub fn failure(&self) -> Option<Error> {
        self.shared.failure()
    }

    /// The directory the WAL lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Closing the channel lets the flusher finish what is queued, then exit.
        self.tx.lock().take();
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
    }
}
