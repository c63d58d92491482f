//! What the Raft layer replicates: an [`Application`] owns the meaning of log entries.
//!
//! The Raft layer orders opaque commands (the bytes of a [`crate::Request`]), stores them in the
//! log, ships them to peers and hands each committed one to the application exactly once, in
//! order, together with the Raft keys of that entry (the applied log id, the membership) to
//! write in the same engine batch. Decoding the command, deciding what it does to the engine
//! and what it answers are the application's; so are any extra files a checkpoint must carry
//! and any upkeep the application's own files need.
//!
//! The Raft layer's keys sit under [`RAFT_KEY_PREFIX`]; an application must not write the
//! `applied` or `membership` names there.

use std::path::Path;

use bytes::Bytes;
use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointStore};
use qastore_lsm::{Engine, WriteBatch};

use crate::error::BoxError;

/// The prefix of the keys the Raft layer keeps in the engine (`applied`, `membership`).
pub const RAFT_KEY_PREFIX: &[u8] = b"sraft\0";

/// A reader of a checkpoint's own contents, as a blob maker is given it.
pub type CheckpointReader<'a> = &'a dyn Fn(&[u8]) -> qastore_lsm::Result<Option<Bytes>>;

/// What makes a checkpoint's blob (the Raft state it covers) from a reader of its contents.
pub type MakeBlob<'a> = &'a dyn Fn(CheckpointReader<'_>) -> qastore_lsm::Result<Bytes>;

/// Why an application failed to open, reload or apply: fatal to applying, unlike answers.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine failed; kept whole so that damage to it is recognised and repaired.
    #[error(transparent)]
    Engine(#[from] qastore_lsm::Error),
    /// Anything else the application met, its type kept as the source.
    #[error(transparent)]
    Other(BoxError),
}

impl AppError {
    /// Wraps an application's own error.
    pub fn other(e: impl Into<BoxError>) -> AppError {
        AppError::Other(e.into())
    }
}

/// What a committed log entry brings to the application.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The bytes of a command, as proposed (the application decodes and checks them).
    Command(&'a Bytes),
    /// No command (a blank or membership entry): only the Raft keys are written.
    Nothing,
}

/// What applying one entry gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<R> {
    /// The answer for whoever proposed the entry.
    pub response: R,
    /// Whether the entry is a hash mark: every node hashes its state as of it.
    pub hash_mark: bool,
}

impl<R> Applied<R> {
    /// An answer that is not a hash mark.
    pub fn answer(response: R) -> Self {
        Applied {
            response,
            hash_mark: false,
        }
    }
}

/// A replicated application: the state machine the Raft layer drives over one storage engine.
///
/// Every method runs on the blocking pool or at start-up; none may depend on the local clock or
/// anything else that differs between nodes, or replicas diverge.
pub trait Application: Send + Sync + 'static {
    /// What applying a command answers its proposer.
    type Response: Clone + std::fmt::Debug + Send + Sync + 'static;

    /// The application over `engine` as it was last flushed (at start-up).
    fn open(engine: &Engine) -> Result<Self, AppError>
    where
        Self: Sized;

    /// Takes up `engine`, which replaced the previous one (a snapshot was installed or a
    /// damaged engine repaired): in-memory state must be read again from it.
    fn reload(&self, engine: &Engine) -> Result<(), AppError>;

    /// Applies the entry at log index `index` (at least 1): what `payload` asks, together with
    /// `system`, the Raft keys of this entry, as ONE engine batch at `index`. An input the
    /// application refuses (a command that does not decode included) is an answer, applied
    /// with `system` alone; an error means the engine failed.
    fn apply(
        &self,
        engine: &Engine,
        index: u64,
        payload: Payload<'_>,
        system: WriteBatch,
    ) -> Result<Applied<Self::Response>, AppError>;

    /// The answer for a command whose entry the engine already held when it came to be
    /// applied (a repair replaced the engine meanwhile), for the reason given.
    fn already_applied(reason: String) -> Self::Response;

    /// The command that asks every node to hash its state (see [`Applied::hash_mark`]).
    fn hash_mark_command() -> Bytes;

    /// Key prefixes left out of the replica hash: what replicas keep alike but is a record of
    /// what was done rather than the application's data (an audit trail of operators'
    /// actions, refused ones included), so that comparing data before and after a refused
    /// action finds it unchanged.
    fn unhashed_prefixes() -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// Whether applying `command` is quick work in the engine's memory only (a client's small
    /// write: lookups and inserts, no file written or synced). A few such entries together are
    /// applied on the runtime thread, sparing them two thread hops; everything else is applied
    /// on the blocking pool.
    fn applies_quickly(&self, _command: &[u8]) -> bool {
        false
    }

    /// Takes a checkpoint of `engine` into `store`, its blob made by `make_blob`. An
    /// application with files of its own beside the engine carries them here.
    fn create_checkpoint(
        &self,
        store: &CheckpointStore,
        engine: &Engine,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo> {
        store.create_with(engine, &[], |read| make_blob(read))
    }

    /// Writes a checkpoint of `engine` into `dir` (a backup), its blob made by `make_blob`.
    fn write_checkpoint(
        &self,
        engine: &Engine,
        dir: &Path,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo> {
        engine.checkpoint_with(dir, &[], |read| make_blob(read))
    }

    /// Periodic upkeep of the application's own files (blocking; every node does its own).
    fn upkeep(&self, engine: &Engine) -> Result<(), AppError> {
        let _ = engine;
        Ok(())
    }
}
