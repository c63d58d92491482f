//! openraft's own conformance suite for log stores and state machines, run on the real write-ahead
//! log and the real engine (files in a temporary directory, fsyncs included), with the toy
//! key/value application on top.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::wal::{Wal, WalConfig};
use qastore_lsm::EngineConfig;
use qastore_raft::LogStore;
use qastore_raft::StateMachine;
use qastore_raft::TypeConfig;
use support::Toy;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let fail = |e: &dyn std::fmt::Display| {
            StorageError::read(TypeConfig::err_from_error(&std::io::Error::other(
                e.to_string(),
            )))
        };
        let dir = TempDir::new().map_err(|e| fail(&e))?;
        let vfs = OsVfs::shared();
        let wal = Wal::open(vfs.clone(), dir.path().join("wal"), WalConfig::default())
            .map_err(|e| fail(&e))?;
        let (sm, _) = StateMachine::open::<Toy>(vfs, dir.path(), EngineConfig::default())
            .map_err(|e| fail(&e))?;
        Ok((dir, LogStore::new(Arc::new(wal)), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_and_the_engine_pass_openraft_s_storage_suite() {
    Suite::test_all(Builder).await.unwrap();
}
