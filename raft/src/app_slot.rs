//! The application as the state machine holds it: behind an object-safe trait, so the state
//! machine (and with it openraft's type configuration) is one type for every application.

use std::path::Path;

use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointStore};
use qastore_lsm::{Engine, WriteBatch};

use crate::application::{AppError, Application, MakeBlob, Payload};
use crate::reply::Reply;

/// An [`Application`] with its response type erased.
pub(crate) trait DynApplication: Send + Sync {
    /// See [`Application::reload`].
    fn reload(&self, engine: &Engine) -> Result<(), AppError>;
    /// See [`Application::apply`]; the answer and whether the entry is a hash mark.
    fn apply(
        &self,
        engine: &Engine,
        index: u64,
        payload: Payload<'_>,
        system: WriteBatch,
    ) -> Result<(Reply, bool), AppError>;
    /// See [`Application::already_applied`].
    fn already_applied(&self, reason: String) -> Reply;
    /// See [`Application::applies_quickly`].
    fn applies_quickly(&self, command: &[u8]) -> bool;
    /// See [`Application::create_checkpoint`].
    fn create_checkpoint(
        &self,
        store: &CheckpointStore,
        engine: &Engine,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo>;
    /// See [`Application::write_checkpoint`].
    fn write_checkpoint(
        &self,
        engine: &Engine,
        dir: &Path,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo>;
    /// See [`Application::upkeep`].
    fn upkeep(&self, engine: &Engine) -> Result<(), AppError>;
}

impl<A: Application> DynApplication for A {
    fn reload(&self, engine: &Engine) -> Result<(), AppError> {
        Application::reload(self, engine)
    }

    fn apply(
        &self,
        engine: &Engine,
        index: u64,
        payload: Payload<'_>,
        system: WriteBatch,
    ) -> Result<(Reply, bool), AppError> {
        let applied = Application::apply(self, engine, index, payload, system)?;
        Ok((Reply::of(applied.response), applied.hash_mark))
    }

    fn applies_quickly(&self, command: &[u8]) -> bool {
        Application::applies_quickly(self, command)
    }

    fn already_applied(&self, reason: String) -> Reply {
        Reply::of(A::already_applied(reason))
    }

    fn create_checkpoint(
        &self,
        store: &CheckpointStore,
        engine: &Engine,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo> {
        Application::create_checkpoint(self, store, engine, make_blob)
    }

    fn write_checkpoint(
        &self,
        engine: &Engine,
        dir: &Path,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo> {
        Application::write_checkpoint(self, engine, dir, make_blob)
    }

    fn upkeep(&self, engine: &Engine) -> Result<(), AppError> {
        Application::upkeep(self, engine)
    }
}
