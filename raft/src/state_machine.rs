//! The Raft state machine: committed entries applied to the storage engine.
//!
//! Every entry at index `i >= 1` becomes one engine batch at log index `i`, holding its data
//! and, in the same batch, the system keys: the applied log id and, for membership entries, the
//! membership. So the engine always knows exactly which entry it holds last. The engine keeps no
//! log of its own: after a restart it holds what it had flushed, `applied_state` reports that,
//! and openraft re-applies the committed tail from the Raft log, once.
//!
//! Openraft's first entry (index 0, the initial membership) carries no data and cannot be an
//! engine batch (index 0 is not a valid engine index); it is held in memory and written with
//! the next entry. A restart before that re-applies it from the log.
//!
//! Applying runs on the blocking pool, after awaiting the engine's write room: flushes and
//! compactions run on the engine's own threads, never inside `apply`.
//!
//! What an entry's command does to the application's data, and what it answers, is the
//! application's ([`Application`]): this module prepares the entry's system keys and calls it
//! once per entry, then takes the state hash at hash marks.

use std::collections::VecDeque;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::storage::{ApplyResponder, EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use parking_lot::Mutex;
use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointStore, EngineHome};
use qastore_lsm::vfs::VfsRef;
use qastore_lsm::{Engine, EngineConfig, WriteBatch};

use crate::app_slot::DynApplication;
use crate::application::{Application, Payload, RAFT_KEY_PREFIX};
use crate::codec;
use crate::damage::{is_damage, EngineDamage};
use crate::engine_slot::EngineSlot;
use crate::error::{to_io, Error, Result};
use crate::hash_marks::HashMarks;
use crate::repair::{self, Caller, PeerList};
use crate::reply::Reply;
use crate::snapshot::{decode_blob, encode_blob, SnapshotFiles};
use crate::types::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::write_stages::{Point, Timeline};

/// Entries applied per trip to the blocking pool.
const APPLY_CHUNK: usize = 64;

/// At most this many entries, each quick to apply ([`Application::applies_quickly`]), are
/// applied on the runtime thread instead of the blocking pool: such an entry is memtable
/// lookups and inserts (tens of microseconds; flushes and compactions run on the engine's own
/// threads, and the write room is awaited before), less than the two thread hops of a trip to
/// the pool, which every entry behind it waited for as well.
const INLINE_APPLY_ENTRIES: usize = 8;

fn system_key(name: &str) -> Vec<u8> {
    [RAFT_KEY_PREFIX, name.as_bytes()].concat()
}

fn applied_key() -> Vec<u8> {
    system_key("applied")
}

fn membership_key() -> Vec<u8> {
    system_key("membership")
}

/// The hash replicas are compared by: every key and value except the applied log id and the
/// membership, which say where the data sits in a log rather than what it is, and the keys
/// under `unhashed` (see [`crate::Application::unhashed_prefixes`]).
pub fn replica_hash(
    view: qastore_lsm::EngineIter,
    unhashed: &[Vec<u8>],
) -> qastore_lsm::Result<u64> {
    let (applied, membership) = (applied_key(), membership_key());
    view.state_hash_where(|k| {
        k != applied.as_slice()
            && k != membership.as_slice()
            && !unhashed.iter().any(|p| k.starts_with(p))
    })
}

/// What has been applied.
#[derive(Debug, Clone, Default)]
struct Applied {
    log_id: Option<LogId>,
    membership: StoredMembership,
}

struct Shared {
    vfs: VfsRef,
    options: EngineConfig,
    engine: EngineSlot,
    home: Arc<tokio::sync::Mutex<EngineHome>>,
    checkpoints: CheckpointStore,
    applied: Mutex<Applied>,
    app: Arc<dyn DynApplication>,
    hash_marks: Arc<HashMarks>,
    damage: Arc<EngineDamage>,
    /// Held while entries are applied or the engine is repaired: one at a time.
    apply_turn: tokio::sync::Mutex<()>,
    /// Where a damaged engine is repaired from, once the node knows its peers.
    repairer: std::sync::OnceLock<(Caller, PeerList)>,
    /// The node's stamps of its recent entries (apply begun, applied).
    timeline: Arc<Timeline>,
    /// The engine known to hold the membership key (a weak handle: its address is never
    /// reused while held), so that applying an entry does not look the key up every time.
    membership_held_by: Mutex<Weak<Engine>>,
    /// The index of the entry being applied, or last applied: its data may be visible in the
    /// engine before `applied` names it, so a read reports this as the newest it may have seen.
    applying: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("checkpoints", &self.checkpoints.root())
            .finish()
    }
}

/// The state machine of one node. Clones share it.
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Shared>,
}

/// Where a node keeps its engine and checkpoints, under its data directory.
pub fn engine_home_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("engine")
}

/// The checkpoint store of a node.
pub fn checkpoints_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

/// Reads what an engine holds of the Raft state.
fn load_applied(engine: &Engine) -> Result<Applied> {
    let log_id = match engine.get(&applied_key())? {
        Some(b) => codec::decode_log_id(&b)?,
        None => None,
    };
    let membership = match engine.get(&membership_key())? {
        Some(b) => codec::decode_stored_membership(&b)?,
        None => StoredMembership::default(),
    };
    Ok(Applied { log_id, membership })
}

/// The log id the engine of the (stopped) node in `data_dir` has applied, read without
/// opening its application.
pub(crate) fn applied_in(vfs: VfsRef, data_dir: &Path) -> Result<Option<LogId>> {
    let home = EngineHome::open(vfs.clone(), engine_home_dir(data_dir))?;
    let engine = Engine::open(vfs, home.active_dir(), EngineConfig::default())?;
    Ok(load_applied(&engine)?.log_id)
}

impl StateMachine {
    /// Opens the state machine of the node whose data directory is `data_dir`: its engine (as
    /// last flushed), its checkpoints, and the application `A` on that engine, which it
    /// returns beside the state machine.
    pub fn open<A: Application>(
        vfs: VfsRef,
        data_dir: &Path,
        options: EngineConfig,
    ) -> Result<(StateMachine, Arc<A>)> {
        let home = EngineHome::open(vfs.clone(), engine_home_dir(data_dir))?;
        let engine = Engine::open(vfs.clone(), home.active_dir(), options.clone())?;
        let checkpoints = CheckpointStore::open(
            vfs.clone(),
            checkpoints_dir(data_dir),
            qastore_lsm::checkpoint::DEFAULT_KEEP,
        )?;
        let applied = load_applied(&engine)?;
        let app = Arc::new(A::open(&engine)?);
        tracing::info!(applied = ?applied.log_id, "state machine opened");
        let sm = StateMachine {
            inner: Arc::new(Shared {
                vfs,
                options,
                engine: EngineSlot::new(engine),
                home: Arc::new(tokio::sync::Mutex::new(home)),
                checkpoints,
                applied: Mutex::new(applied),
                app: app.clone(),
                hash_marks: Arc::new(HashMarks::new(A::unhashed_prefixes())),
                damage: Arc::default(),
                apply_turn: tokio::sync::Mutex::new(()),
                repairer: std::sync::OnceLock::new(),
                timeline: Arc::default(),
                membership_held_by: Mutex::new(Weak::new()),
                applying: AtomicU64::new(0),
            }),
        };
        Ok((sm, app))
    }

    /// The live engine (fails while a snapshot is being installed, and while the engine is
    /// damaged: its state is not served).
    pub fn engine(&self) -> Result<Arc<Engine>> {
        if let Some(reason) = self.damage_reason() {
            return Err(Error::Damaged(reason));
        }
        self.inner.engine.get()
    }

    /// Why this node's engine cannot be used, if it cannot: damage found while applying or
    /// verifying, or a background failure that stopped the engine.
    pub fn damage_reason(&self) -> Option<String> {
        if let Some(reason) = self.inner.damage.reason() {
            return Some(reason);
        }
        let failure = self.inner.engine.get().ok()?.failure()?;
        self.inner.damage.report(failure.to_string());
        self.inner.damage.reason()
    }

    /// Converts an error met reading the engine, recording it as damage when the engine's
    /// bytes failed a check: the node then stops serving the engine and repairs it.
    pub fn storage_error(&self, e: qastore_lsm::Error) -> Error {
        if crate::damage::is_corruption(&e) {
            self.inner.damage.report(e.to_string());
        }
        e.into()
    }

    /// Closes the engine when the node shuts down, after Raft has stopped: flushes it if asked, waits
    /// for a snapshot being built or installed and for queries still holding the engine, then
    /// for the engine's threads. Nothing writes into the data directory after this returns.
    pub async fn close(&self, flush: bool) -> Result<()> {
        let _home = self.inner.home.lock().await;
        // What is applied goes into tables first, so a restart has little log to re-apply.
        if let (true, Ok(engine)) = (flush, self.inner.engine.get()) {
            let flushed = tokio::task::spawn_blocking(move || engine.flush())
                .await
                .map_err(|e| Error::Stopped(e.to_string()))?;
            if let Err(e) = flushed {
                tracing::warn!(error = %e, "flushing the engine before closing it");
            }
        }
        self.inner.engine.retire().await
    }

    /// The record of damage found in the engine and repairs made.
    pub fn damage(&self) -> &Arc<EngineDamage> {
        &self.inner.damage
    }

    /// Checks every block of every table against its checksum (blocking: a full read of the
    /// tables). Damage is recorded, for a repair before the node serves anything.
    pub fn verify_engine(&self) -> Result<()> {
        let engine = self.inner.engine.get()?;
        match engine.verify() {
            Ok(()) => Ok(()),
            Err(e) if is_damage(&e) => {
                self.inner.damage.report(e.to_string());
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Lets the state machine repair a damaged engine from the peers `peers` lists, calling
    /// as `caller`.
    pub fn set_repairer(&self, caller: Caller, peers: PeerList) {
        let _ = self.inner.repairer.set((caller, peers));
    }

    /// Replaces a damaged engine with a checkpoint covering at least `min_index` fetched from
    /// one of `peers`. Returns the log id the new engine holds.
    pub async fn repair_from(
        &self,
        caller: &Caller,
        peers: &[repair::Peer],
        min_index: u64,
    ) -> Result<Option<LogId>> {
        let info =
            repair::fetch_from_any(caller, peers, min_index, &self.inner.checkpoints).await?;
        let lease = self.inner.checkpoints.lease(&info.name())?;
        let meta = decode_blob(&info.meta.blob)?;
        self.install(&meta, SnapshotFiles::new(lease)).await?;
        self.inner.damage.repaired();
        // Older checkpoints hard-link the damaged tables: never serve them to a peer.
        let store = self.inner.checkpoints.clone();
        match tokio::task::spawn_blocking(move || store.remove_damaged()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "checking the older checkpoints failed"),
            Err(e) => tracing::warn!(error = %e, "checking the older checkpoints failed"),
        }
        Ok(meta.last_log_id)
    }

    /// Repairs the engine from the peers the node knows, retrying with a growing pause until
    /// it succeeds or the node stops. Called with the apply turn held.
    async fn repair_until_done(&self, reason: &str) -> Result<()> {
        let Some((caller, peers)) = self.inner.repairer.get() else {
            return Err(Error::Damaged(format!(
                "{reason}; no peer is known yet to repair it from"
            )));
        };
        let mut pause = Duration::from_millis(200);
        loop {
            let min_index = self.applied().map_or(0, |a| a.index);
            match self.repair_from(caller, &peers(), min_index).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "repairing the engine failed")
                }
            }
            if self.inner.damage.stopping() {
                return Err(Error::Stopped(format!(
                    "the node stopped before its damaged engine was repaired ({reason})"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Repairs a damaged engine now, unless entries are being applied (they repair it
    /// themselves). For damage found while nothing is applied, e.g. by a background compaction.
    pub async fn repair_if_damaged(&self) -> Result<()> {
        let Some(reason) = self.damage_reason() else {
            return Ok(());
        };
        let Ok(_turn) = self.inner.apply_turn.try_lock() else {
            return Ok(());
        };
        self.repair_until_done(&reason).await
    }

    /// Runs the application's upkeep on the live engine (blocking); nothing while the engine
    /// cannot be used.
    pub(crate) fn upkeep(&self) -> Result<()> {
        match self.engine() {
            Ok(engine) => Ok(self.inner.app.upkeep(&engine)?),
            Err(_) => Ok(()),
        }
    }

    /// The last applied log id.
    pub fn applied(&self) -> Option<LogId> {
        self.inner.applied.lock().log_id
    }

    /// The newest index whose data a read of the engine may see: the applied index, or the
    /// entry being applied once it has begun writing to the engine. A read taking this after
    /// it ran has seen nothing newer.
    pub fn visible_index(&self) -> u64 {
        let applied = self.applied().map_or(0, |a| a.index);
        applied.max(self.inner.applying.load(Ordering::SeqCst))
    }

    /// The membership as of the last applied entry.
    pub fn membership(&self) -> StoredMembership {
        self.inner.applied.lock().membership.clone()
    }

    /// The hash marks, to hash from another thread.
    pub fn hash_marks_shared(&self) -> Arc<HashMarks> {
        self.inner.hash_marks.clone()
    }

    /// The state hashes taken at hash marks.
    pub fn hash_marks(&self) -> &HashMarks {
        &self.inner.hash_marks
    }

    /// The node's checkpoint store.
    pub fn checkpoints(&self) -> &CheckpointStore {
        &self.inner.checkpoints
    }

    /// The stamps of the node's recent entries, shared with its log store and peer clients.
    pub fn timeline(&self) -> &Arc<Timeline> {
        &self.inner.timeline
    }

    /// Applies a chunk of entries on the blocking pool (a few quick ones on the runtime
    /// thread) and answers their responders.
    ///
    /// Damage to the engine (a failed checksum, a stopped engine) does not stop the node: the
    /// engine is replaced by a checkpoint from a peer covering at least what was applied, and
    /// applying goes on, skipping the entries the checkpoint already holds.
    async fn apply_chunk(
        &self,
        chunk: Vec<EntryResponder<TypeConfig>>,
    ) -> std::result::Result<(), io::Error> {
        let _turn = self.inner.apply_turn.lock().await;
        let (entries, responders): (Vec<Entry>, VecDeque<_>) = chunk.into_iter().unzip();
        let entries = Arc::new(entries);
        // Each answer goes out as soon as its entry is applied: a write early in a chunk does
        // not wait for the rest of it.
        let mut responders = responders;
        let mut applied = 0;
        while applied < entries.len() {
            if let Some(reason) = self.damage_reason() {
                self.repair_until_done(&reason).await.map_err(|e| {
                    tracing::error!(error = %e, "the damaged engine cannot be repaired; the node stops applying");
                    to_io(e)
                })?;
            }
            let engine = self.inner.engine.get().map_err(to_io)?;
            // Back-pressure is awaited here, off the blocking pool and without holding anything.
            engine.write_room().await;
            let waiting = std::mem::take(&mut responders);
            let (done, failed, waiting) = if self.applies_quickly(&entries[applied..]) {
                self.apply_run(&engine, &entries[applied..], waiting)
            } else {
                let (sm, todo, start) = (self.clone(), entries.clone(), applied);
                tokio::task::spawn_blocking(move || sm.apply_run(&engine, &todo[start..], waiting))
                    .await
                    .map_err(to_io)?
            };
            responders = waiting;
            applied += done;
            match failed {
                None => {}
                Some(Error::Storage(e)) if is_damage(&e) => self.inner.damage.report(e.to_string()),
                Some(e) => {
                    tracing::error!(error = %e, "applying a committed entry failed; the node stops");
                    return Err(to_io(e));
                }
            }
        }
        Ok(())
    }

    /// Whether `todo` is few entries, each quick to apply (see
    /// [`Application::applies_quickly`]): then they are applied on the runtime thread.
    fn applies_quickly(&self, todo: &[Entry]) -> bool {
        todo.len() <= INLINE_APPLY_ENTRIES
            && todo.iter().all(|e| match &e.payload {
                EntryPayload::Normal(req) => self.inner.app.applies_quickly(req.bytes()),
                // Blank and membership entries write the Raft keys alone.
                _ => true,
            })
    }

    /// Applies `todo` in order, answering each entry's responder (the front of `waiting`) as
    /// soon as it is applied; stops at the first error. Returns how many were applied, the
    /// error, and the responders of the entries not applied.
    fn apply_run(
        &self,
        engine: &Arc<Engine>,
        todo: &[Entry],
        mut waiting: VecDeque<Option<ApplyResponder<TypeConfig>>>,
    ) -> (
        usize,
        Option<Error>,
        VecDeque<Option<ApplyResponder<TypeConfig>>>,
    ) {
        let timeline = &self.inner.timeline;
        for (done, e) in todo.iter().enumerate() {
            let index = e.log_id.index;
            timeline.passed(index, Point::ApplyStarted, Instant::now());
            match self.apply_entry(engine, e) {
                Ok(reply) => {
                    timeline.passed(index, Point::Applied, Instant::now());
                    if let Some(Some(responder)) = waiting.pop_front() {
                        responder.send(reply);
                    }
                }
                Err(err) => return (done, Some(err), waiting),
            }
        }
        (todo.len(), None, waiting)
    }

    /// Applies one committed entry. An error here is fatal to the node (an I/O failure, or
    /// damage): outcomes that depend on the input are answers, not errors.
    fn apply_entry(&self, engine: &Arc<Engine>, entry: &Entry) -> Result<Reply> {
        let id = entry.log_id;
        let index = id.index;
        let new_membership = match &entry.payload {
            EntryPayload::Membership(m) => Some(StoredMembership::new(Some(id), m.clone())),
            _ => None,
        };
        if index == 0 {
            let mut applied = self.inner.applied.lock();
            applied.log_id = Some(id);
            if let Some(m) = new_membership {
                applied.membership = m;
            }
            return Ok(Reply::nothing());
        }
        // A checkpoint installed to repair the engine already holds this entry.
        if self.applied().is_some_and(|a| a.index >= index) {
            return Ok(match &entry.payload {
                EntryPayload::Normal(_) => self.inner.app.already_applied(
                    "this node replaced its state with a peer's checkpoint while the \
                     entry was applied; retry with the same request id for its outcome"
                        .into(),
                ),
                _ => Reply::nothing(),
            });
        }
        let mut sys = WriteBatch::new();
        sys.put(applied_key(), codec::encode_log_id(Some(&id)));
        // The membership goes with every entry until one lands in the engine: this covers
        // the initial membership at index 0, which is never an engine batch.
        let membership = match &new_membership {
            Some(m) => Some(m.clone()),
            None if !self.engine_holds_membership(engine)? => {
                Some(self.inner.applied.lock().membership.clone())
            }
            None => None,
        };
        if let Some(m) = &membership {
            sys.put(membership_key(), codec::encode_stored_membership(m));
        }
        let payload = match &entry.payload {
            EntryPayload::Normal(req) => Payload::Command(req.bytes()),
            _ => Payload::Nothing,
        };
        self.inner.applying.fetch_max(index, Ordering::SeqCst);
        let (response, hash_mark) = self.inner.app.apply(engine, index, payload, sys)?;
        if hash_mark {
            self.inner
                .hash_marks
                .start(index, engine.scan(Bound::Unbounded, Bound::Unbounded));
        }
        if membership.is_some() {
            *self.inner.membership_held_by.lock() = Arc::downgrade(engine);
        }
        let mut applied = self.inner.applied.lock();
        applied.log_id = Some(id);
        if let Some(m) = new_membership {
            applied.membership = m;
        }
        Ok(response)
    }

    /// Whether `engine` holds the membership key: remembered once seen, looked up otherwise
    /// (a new engine, from a snapshot or a repair, is looked at once).
    fn engine_holds_membership(&self, engine: &Arc<Engine>) -> Result<bool> {
        if std::ptr::eq(
            self.inner.membership_held_by.lock().as_ptr(),
            Arc::as_ptr(engine),
        ) {
            return Ok(true);
        }
        let held = engine.get(&membership_key())?.is_some();
        if held {
            *self.inner.membership_held_by.lock() = Arc::downgrade(engine);
        }
        Ok(held)
    }

    /// Checkpoints the engine (after flushing it) and returns the snapshot it makes.
    fn build(&self) -> Result<Snapshot> {
        // A damaged engine's state must not spread to peers as a snapshot.
        let engine = self.engine()?;
        // Only for a state that never reached the engine (nothing but index 0 applied).
        let before = self.inner.applied.lock().clone();
        engine.flush()?;
        let info = self
            .inner
            .app
            .create_checkpoint(&self.inner.checkpoints, &engine, &|read| {
                raft_blob(read, &before)
            })?;
        self.snapshot_of(&info)
    }

    /// Writes a backup into `dir` (which must not exist yet, on the data directory's file
    /// system): a checkpoint exactly like a snapshot, with the applied log id and membership.
    /// Blocks: run it off the async runtime.
    pub fn backup(&self, dir: &Path) -> Result<CheckpointInfo> {
        let engine = self.engine()?;
        let before = self.inner.applied.lock().clone();
        engine.flush()?;
        Ok(self
            .inner
            .app
            .write_checkpoint(&engine, dir, &|read| raft_blob(read, &before))?)
    }

    fn snapshot_of(&self, info: &CheckpointInfo) -> Result<Snapshot> {
        let lease = self.inner.checkpoints.lease(&info.name())?;
        let meta = decode_blob(&info.meta.blob)?;
        Ok(Snapshot {
            meta,
            snapshot: SnapshotFiles::new(lease),
        })
    }

    /// Makes `files` a checkpoint of this node's own store (copying them if they belong to
    /// another store), then switches the engine to it.
    async fn install(&self, meta: &SnapshotMeta, files: SnapshotFiles) -> Result<()> {
        let own_root = self.inner.checkpoints.root().to_path_buf();
        let info = if files.info().dir.parent() == Some(own_root.as_path()) {
            files.info().clone()
        } else {
            let store = self.inner.checkpoints.clone();
            tokio::task::spawn_blocking(move || copy_checkpoint(&store, &files))
                .await
                .map_err(|e| Error::Stopped(e.to_string()))??
        };
        self.inner.engine.close().await?;
        let mut home = self.inner.home.clone().lock_owned().await;
        let vfs = self.inner.vfs.clone();
        let options = self.inner.options.clone();
        let target = info.clone();
        let (engine, failed) = tokio::task::spawn_blocking(move || match home.switch_to(&target) {
            Ok(dir) => Engine::open(vfs, dir, options).map(|e| (e, None)),
            Err(e) => {
                // A failed switch leaves the old directory active: reopen it.
                tracing::error!(error = %e, "switching to the snapshot failed");
                Engine::open(vfs, home.active_dir(), options).map(|old| (old, Some(e)))
            }
        })
        .await
        .map_err(|e| Error::Stopped(e.to_string()))??;
        if let Some(e) = failed {
            self.inner.engine.put(engine);
            return Err(e.into());
        }
        self.inner.app.reload(&engine)?;
        self.inner.engine.put(engine);
        *self.inner.applied.lock() = Applied {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        tracing::info!(last_log_id = ?meta.last_log_id, checkpoint = %info.name(), "snapshot installed");
        Ok(())
    }
}

/// The Raft state a checkpoint records, read from the checkpoint itself (`before` covers a
/// state that never reached the engine: nothing but index 0 applied).
fn raft_blob(
    read: &dyn Fn(&[u8]) -> qastore_lsm::Result<Option<Bytes>>,
    before: &Applied,
) -> qastore_lsm::Result<Bytes> {
    let applied = match read(&applied_key())? {
        Some(b) => codec::decode_log_id(&b).map_err(corrupt_state)?,
        None => before.log_id,
    };
    let membership = match read(&membership_key())? {
        Some(b) => codec::decode_stored_membership(&b).map_err(corrupt_state)?,
        None => before.membership.clone(),
    };
    Ok(Bytes::from(encode_blob(applied.as_ref(), &membership)))
}

fn corrupt_state(e: crate::error::CodecError) -> qastore_lsm::Error {
    qastore_lsm::Error::BadValue {
        key: "raft state".into(),
        reason: e.to_string(),
    }
}

/// Copies a checkpoint of another store into `store`, checking every file as it arrives.
fn copy_checkpoint(store: &CheckpointStore, files: &SnapshotFiles) -> Result<CheckpointInfo> {
    const CHUNK: usize = 1 << 20;
    let meta = files.info().meta.clone();
    let mut installer = store.begin_install(meta.clone())?;
    for f in &meta.files {
        let mut offset = 0;
        while offset < f.size {
            let data = files.lease().read_chunk(&f.name, offset, CHUNK)?;
            if data.is_empty() {
                break;
            }
            installer.write(&f.name, offset, &data)?;
            offset += data.len() as u64;
        }
    }
    Ok(installer.finish()?)
}

/// Builds a snapshot of the state machine.
#[derive(Debug)]
pub struct SnapshotBuilder {
    sm: StateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFiles;

    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot, io::Error> {
        let sm = self.sm.clone();
        let snap = tokio::task::spawn_blocking(move || sm.build())
            .await
            .map_err(to_io)?
            .map_err(to_io)?;
        tracing::info!(last_log_id = ?snap.meta.last_log_id, checkpoint = %snap.snapshot.info().name(), "snapshot built");
        Ok(snap)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFiles;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, StoredMembership), io::Error> {
        let a = self.inner.applied.lock().clone();
        Ok((a.log_id, a.membership))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> std::result::Result<(), io::Error>
    where
        Strm: Stream<Item = std::result::Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut entries = entries;
        let mut chunk = Vec::with_capacity(APPLY_CHUNK);
        while let Some(item) = entries.next().await {
            chunk.push(item?);
            if chunk.len() == APPLY_CHUNK {
                self.apply_chunk(std::mem::take(&mut chunk)).await?;
            }
        }
        if !chunk.is_empty() {
            self.apply_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        if !force {
            // Nothing new since the latest checkpoint: keep it.
            let applied = self.applied().map(|id| id.index);
            let latest = self.inner.checkpoints.latest().ok().flatten();
            if let (Some(a), Some(l)) = (applied, latest) {
                if decode_blob(&l.meta.blob)
                    .ok()
                    .and_then(|m| m.last_log_id)
                    .is_some_and(|id| id.index >= a)
                {
                    return None;
                }
            }
        }
        Some(SnapshotBuilder { sm: self.clone() })
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { sm: self.clone() }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFiles,
    ) -> std::result::Result<(), io::Error> {
        self.install(meta, snapshot).await.map_err(to_io)
    }

    async fn get_current_snapshot(&mut self) -> std::result::Result<Option<Snapshot>, io::Error> {
        let Some(info) = self.inner.checkpoints.latest().map_err(to_io)? else {
            return Ok(None);
        };
        self.snapshot_of(&info).map(Some).map_err(to_io)
    }
}
