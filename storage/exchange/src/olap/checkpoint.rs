//! Checkpoints of an exchange engine: the engine's checkpoint, carrying the Parquet files,
//! taken while they are held still.

use std::path::Path;

use bytes::Bytes;
use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointStore};
use qastore_lsm::Engine;

use super::lock::{lock, CHECKPOINT_DIRS};

/// What makes a checkpoint's blob from a reader of its own contents (see
/// [`Engine::checkpoint_with`]).
pub trait MakeBlob:
    FnOnce(&dyn Fn(&[u8]) -> qastore_lsm::Result<Option<Bytes>>) -> qastore_lsm::Result<Bytes>
{
}

impl<F> MakeBlob for F where
    F: FnOnce(&dyn Fn(&[u8]) -> qastore_lsm::Result<Option<Bytes>>) -> qastore_lsm::Result<Bytes>
{
}

/// Takes a checkpoint of `engine` into `store` ([`CheckpointStore::create_with`]) with its
/// Parquet files.
pub fn create_checkpoint(
    store: &CheckpointStore,
    engine: &Engine,
    make_blob: impl MakeBlob,
) -> qastore_lsm::Result<CheckpointInfo> {
    let _olap = lock(engine);
    store.create_with(engine, &CHECKPOINT_DIRS, make_blob)
}

/// Writes a checkpoint of `engine` into the new directory `dir` ([`Engine::checkpoint_with`])
/// with its Parquet files.
pub fn write_checkpoint(
    engine: &Engine,
    dir: &Path,
    make_blob: impl MakeBlob,
) -> qastore_lsm::Result<CheckpointInfo> {
    let _olap = lock(engine);
    engine.checkpoint_with(dir, &CHECKPOINT_DIRS, make_blob)
}
