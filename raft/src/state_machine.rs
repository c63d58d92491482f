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
//! Writes are idempotent (see `qastore_storage::dedup`): a retry gets the original answer and
//! changes nothing; a request id reused with another payload is refused.

use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use parking_lot::{Mutex, RwLock};
use qastore_storage::apply::stage;
use qastore_storage::calendar::TradingCalendar;
use qastore_storage::checkpoint::{CheckpointInfo, CheckpointStore, EngineHome};
use qastore_storage::dedup::{self, Check, DedupRecord};
use qastore_storage::keys::{KeyBuf, SYSTEM};
use qastore_storage::olap::{self, RetentionPolicy};
use qastore_storage::vfs::VfsRef;
use qastore_storage::{Engine, EngineOptions, WriteBatch};

use crate::codec;
use crate::command::{Command, Response, SystemCommand, WriteCommand};
use crate::engine_slot::EngineSlot;
use crate::error::{to_io, Error, Result};
use crate::hash_marks::HashMarks;
use crate::settings::ClusterSettings;
use crate::snapshot::{decode_blob, encode_blob, SnapshotFiles};
use crate::types::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// Entries applied per trip to the blocking pool.
const APPLY_CHUNK: usize = 64;
/// Expired request ids are swept every this many entries...
const DEDUP_SWEEP_EVERY: u64 = 16;
/// ...at most this many per sweep.
const DEDUP_SWEEP_MAX: usize = 1024;

fn system_key(name: &str) -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("raft").last_id(name).build()
}

fn applied_key() -> Vec<u8> {
    system_key("applied")
}

fn membership_key() -> Vec<u8> {
    system_key("membership")
}

/// The hash replicas are compared by: every key and value except the applied log id and the
/// membership, which say where the data sits in a log rather than what it is.
pub fn replica_hash(view: qastore_storage::EngineIter) -> qastore_storage::Result<u64> {
    let (applied, membership) = (applied_key(), membership_key());
    view.state_hash_skipping(&[&applied, &membership])
}

fn calendar_key() -> Vec<u8> {
    system_key("calendar")
}

fn settings_key() -> Vec<u8> {
    system_key("settings")
}

/// What has been applied.
#[derive(Debug, Clone, Default)]
struct Applied {
    log_id: Option<LogId>,
    membership: StoredMembership,
}

struct Shared {
    vfs: VfsRef,
    options: EngineOptions,
    engine: EngineSlot,
    home: Arc<tokio::sync::Mutex<EngineHome>>,
    checkpoints: CheckpointStore,
    applied: Mutex<Applied>,
    calendar: RwLock<Arc<TradingCalendar>>,
    settings: RwLock<Arc<ClusterSettings>>,
    hash_marks: Arc<HashMarks>,
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

fn read_text(engine: &Engine, key: &[u8]) -> Result<Option<String>> {
    match engine.get(key)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| crate::error::CodecError::new("stored settings", "not UTF-8").into()),
    }
}

/// Reads what an engine holds of the Raft state (the replicated calendar and settings too).
fn load_state(engine: &Engine) -> Result<(Applied, TradingCalendar, ClusterSettings)> {
    let log_id = match engine.get(&applied_key())? {
        Some(b) => codec::decode_log_id(&b)?,
        None => None,
    };
    let membership = match engine.get(&membership_key())? {
        Some(b) => codec::decode_stored_membership(&b)?,
        None => StoredMembership::default(),
    };
    let calendar = match read_text(engine, &calendar_key())? {
        Some(t) => TradingCalendar::from_toml(&t).map_err(|e| Error::BadSetting {
            name: "stored calendar",
            reason: e.to_string(),
        })?,
        None => TradingCalendar::builtin(),
    };
    let settings = match read_text(engine, &settings_key())? {
        Some(t) => ClusterSettings::from_toml(&t)?,
        None => ClusterSettings::default(),
    };
    Ok((Applied { log_id, membership }, calendar, settings))
}

impl StateMachine {
    /// Opens the state machine of the node whose data directory is `data_dir`: its engine (as
    /// last flushed) and its checkpoints.
    pub fn open(vfs: VfsRef, data_dir: &Path, options: EngineOptions) -> Result<StateMachine> {
        let home = EngineHome::open(vfs.clone(), engine_home_dir(data_dir))?;
        let engine = Engine::open(vfs.clone(), home.active_dir(), options.clone())?;
        let checkpoints = CheckpointStore::open(
            vfs.clone(),
            checkpoints_dir(data_dir),
            qastore_storage::checkpoint::DEFAULT_KEEP,
        )?;
        let (applied, calendar, settings) = load_state(&engine)?;
        tracing::info!(applied = ?applied.log_id, "state machine opened");
        Ok(StateMachine {
            inner: Arc::new(Shared {
                vfs,
                options,
                engine: EngineSlot::new(engine),
                home: Arc::new(tokio::sync::Mutex::new(home)),
                checkpoints,
                applied: Mutex::new(applied),
                calendar: RwLock::new(Arc::new(calendar)),
                settings: RwLock::new(Arc::new(settings)),
                hash_marks: Arc::default(),
            }),
        })
    }

    /// The live engine (fails while a snapshot is being installed).
    pub fn engine(&self) -> Result<Arc<Engine>> {
        self.inner.engine.get()
    }

    /// The trading calendar in force (replicated; the built-in one until replaced).
    pub fn calendar(&self) -> Arc<TradingCalendar> {
        self.inner.calendar.read().clone()
    }

    /// The cluster settings in force.
    pub fn settings(&self) -> Arc<ClusterSettings> {
        self.inner.settings.read().clone()
    }

    /// The last applied log id.
    pub fn applied(&self) -> Option<LogId> {
        self.inner.applied.lock().log_id
    }

    /// The state hashes taken at hash marks.
    pub fn hash_marks(&self) -> &HashMarks {
        &self.inner.hash_marks
    }

    /// The node's checkpoint store.
    pub fn checkpoints(&self) -> &CheckpointStore {
        &self.inner.checkpoints
    }

    /// Applies a chunk of entries on the blocking pool and answers their responders.
    async fn apply_chunk(
        &self,
        chunk: Vec<EntryResponder<TypeConfig>>,
    ) -> std::result::Result<(), io::Error> {
        let engine = self.inner.engine.get().map_err(to_io)?;
        // Back-pressure is awaited here, off the blocking pool and without holding anything.
        engine.write_room().await;
        let (entries, responders): (Vec<Entry>, Vec<_>) = chunk.into_iter().unzip();
        let sm = self.clone();
        let responses = tokio::task::spawn_blocking(move || {
            entries
                .iter()
                .map(|e| sm.apply_entry(&engine, e))
                .collect::<Result<Vec<Response>>>()
        })
        .await
        .map_err(to_io)?
        .map_err(|e| {
            tracing::error!(error = %e, "applying a committed entry failed; the node stops");
            to_io(e)
        })?;
        for (response, responder) in responses.into_iter().zip(responders) {
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    /// Applies one committed entry. An error here is fatal to the node (an I/O failure, or
    /// damage): outcomes that depend on the input are answers, not errors.
    fn apply_entry(&self, engine: &Engine, entry: &Entry) -> Result<Response> {
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
            return Ok(Response::Nothing);
        }
        let mut sys = WriteBatch::new();
        sys.put(applied_key(), codec::encode_log_id(Some(&id)));
        // The membership goes with every entry until one lands in the engine: this covers
        // the initial membership at index 0, which is never an engine batch.
        let membership = match &new_membership {
            Some(m) => Some(m.clone()),
            None if engine.get(&membership_key())?.is_none() => {
                Some(self.inner.applied.lock().membership.clone())
            }
            None => None,
        };
        if let Some(m) = &membership {
            sys.put(membership_key(), codec::encode_stored_membership(m));
        }
        if index.is_multiple_of(DEDUP_SWEEP_EVERY) {
            let window = self.settings().dedup_window_entries;
            dedup::expire(
                engine,
                index.saturating_sub(window),
                DEDUP_SWEEP_MAX,
                &mut sys,
            )?;
        }
        let response = match &entry.payload {
            EntryPayload::Normal(req) => match req.command() {
                Ok(Command::Write(w)) => self.apply_write(engine, index, &w, sys)?,
                Ok(Command::System(s)) => self.apply_system(engine, index, &s, sys)?,
                Err(e) => {
                    engine.apply(&sys, index)?;
                    Response::Refused {
                        reason: format!("the entry does not decode: {e}"),
                    }
                }
            },
            _ => {
                engine.apply(&sys, index)?;
                Response::Nothing
            }
        };
        let mut applied = self.inner.applied.lock();
        applied.log_id = Some(id);
        if let Some(m) = new_membership {
            applied.membership = m;
        }
        Ok(response)
    }

    fn apply_write(
        &self,
        engine: &Engine,
        index: u64,
        w: &WriteCommand,
        sys: WriteBatch,
    ) -> Result<Response> {
        match dedup::check(engine, &w.client_id, w.request_id, w.payload_hash)? {
            Check::Retry(first) => {
                engine.apply(&sys, index)?;
                Ok(Response::Duplicate {
                    original_index: first.log_index,
                    outcomes: first.outcomes,
                })
            }
            Check::Reused { original_index } => {
                engine.apply(&sys, index)?;
                Ok(Response::RequestIdReused { original_index })
            }
            Check::New => {
                let staged = match stage(engine, &w.records, index) {
                    Ok(s) => s,
                    Err(qastore_storage::Error::InvalidArgument(e)) => {
                        engine.apply(&sys, index)?;
                        return Ok(Response::Refused {
                            reason: e.to_string(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut batch = staged.batch;
                dedup::remember(
                    &mut batch,
                    &w.client_id,
                    w.request_id,
                    &DedupRecord {
                        log_index: index,
                        payload_hash: w.payload_hash,
                        outcomes: staged.outcomes.clone(),
                    },
                );
                append_ops(&mut batch, &sys);
                match engine.apply(&batch, index) {
                    Ok(()) => Ok(Response::Written {
                        outcomes: staged.outcomes,
                    }),
                    Err(qastore_storage::Error::InvalidArgument(e)) => {
                        engine.apply(&sys, index)?;
                        Ok(Response::Refused {
                            reason: e.to_string(),
                        })
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    fn apply_system(
        &self,
        engine: &Engine,
        index: u64,
        cmd: &SystemCommand,
        mut sys: WriteBatch,
    ) -> Result<Response> {
        match cmd {
            SystemCommand::ConvertDay {
                stream,
                trading_day,
            } => {
                let c = olap::convert_day(engine, (*stream).into(), *trading_day, index, sys)?;
                Ok(Response::Converted {
                    partitions: c.partitions.len(),
                    rows: c.rows,
                    bytes: c.bytes,
                })
            }
            SystemCommand::Retain {
                drop_days_before,
                drop_journal_before,
            } => {
                let policy = RetentionPolicy {
                    drop_days_before: *drop_days_before,
                    drop_journal_before: *drop_journal_before,
                };
                let r = olap::retain(engine, policy, index, sys)?;
                Ok(Response::Retained {
                    partitions_removed: r.partitions_removed,
                    journal_entries_removed: r.journal_entries_removed,
                })
            }
            SystemCommand::SetCalendar { toml } => match TradingCalendar::from_toml(toml) {
                Ok(cal) => {
                    sys.put(calendar_key(), Bytes::from(toml.clone()));
                    engine.apply(&sys, index)?;
                    *self.inner.calendar.write() = Arc::new(cal);
                    Ok(Response::SettingsChanged)
                }
                Err(e) => {
                    engine.apply(&sys, index)?;
                    Ok(Response::Refused {
                        reason: format!("calendar: {e}"),
                    })
                }
            },
            SystemCommand::HashMark => {
                engine.apply(&sys, index)?;
                self.inner
                    .hash_marks
                    .start(index, engine.scan(Bound::Unbounded, Bound::Unbounded));
                Ok(Response::HashMarked)
            }
            SystemCommand::SetClusterSettings { toml } => match ClusterSettings::from_toml(toml) {
                Ok(s) => {
                    sys.put(settings_key(), Bytes::from(toml.clone()));
                    engine.apply(&sys, index)?;
                    *self.inner.settings.write() = Arc::new(s);
                    Ok(Response::SettingsChanged)
                }
                Err(e) => {
                    engine.apply(&sys, index)?;
                    Ok(Response::Refused {
                        reason: e.to_string(),
                    })
                }
            },
        }
    }

    /// Checkpoints the engine (after flushing it) and returns the snapshot it makes.
    fn build(&self) -> Result<Snapshot> {
        let engine = self.inner.engine.get()?;
        // Only for a state that never reached the engine (nothing but index 0 applied).
        let before = self.inner.applied.lock().clone();
        engine.flush()?;
        let info = self
            .inner
            .checkpoints
            .create_with(&engine, |read| raft_blob(read, &before))?;
        self.snapshot_of(&info)
    }

    /// Writes a backup into `dir` (which must not exist yet, on the data directory's file
    /// system): a checkpoint exactly like a snapshot, with the applied log id and membership.
    /// Blocks: run it off the async runtime.
    pub fn backup(&self, dir: &Path) -> Result<CheckpointInfo> {
        let engine = self.inner.engine.get()?;
        let before = self.inner.applied.lock().clone();
        engine.flush()?;
        Ok(engine.checkpoint_with(dir, |read| raft_blob(read, &before))?)
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
        let (_, calendar, settings) = load_state(&engine)?;
        self.inner.engine.put(engine);
        *self.inner.calendar.write() = Arc::new(calendar);
        *self.inner.settings.write() = Arc::new(settings);
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
    read: &dyn Fn(&[u8]) -> qastore_storage::Result<Option<Bytes>>,
    before: &Applied,
) -> qastore_storage::Result<Bytes> {
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

fn corrupt_state(e: crate::error::CodecError) -> qastore_storage::Error {
    qastore_storage::Error::BadValue {
        key: "raft state".into(),
        reason: e.to_string(),
    }
}

fn append_ops(batch: &mut WriteBatch, extra: &WriteBatch) {
    for op in extra.ops() {
        match op {
            qastore_storage::BatchOp::Put { key, value } => batch.put(key.clone(), value.clone()),
            qastore_storage::BatchOp::Delete { key } => batch.delete(key.clone()),
        };
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
