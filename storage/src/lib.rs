//! QAStore's single-node storage engine.
//!
//! No network and no Raft here: a [`vfs::Vfs`] every file goes through, the write-ahead log the
//! Raft log store sits on ([`wal`]), and an LSM engine ([`Engine`]) made of a memtable
//! ([`memtable`]), SSTables ([`sstable`]) and a manifest ([`manifest`]). The engine has no WAL
//! of its own: the Raft log is the WAL, so the engine reports the last log index it has durably
//! flushed and the caller re-applies the rest after a restart.

pub mod batch;
pub mod codec;
pub mod engine;
pub mod entry;
pub mod error;
pub mod filenames;
pub mod frame;
pub mod ikey;
pub mod manifest;
pub mod memtable;
pub mod merge;
pub mod sstable;
pub mod version;
pub mod version_set;
pub mod vfs;
pub mod wal;

pub use batch::{BatchOp, WriteBatch};
pub use engine::{Engine, EngineIter, EngineOptions, EngineStats, LevelStats};
pub use error::{Error, InvalidArgument, Result};
