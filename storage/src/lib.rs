//! QAStore's single-node storage engine.
//!
//! No network and no Raft here: a [`vfs::Vfs`] every file goes through, the write-ahead log the
//! Raft log store sits on ([`wal`]), and an LSM engine ([`Engine`]) made of a memtable, SSTables
//! and a manifest. The engine has no WAL of its own: the Raft log is the WAL, so the engine
//! reports the last log index it has durably flushed and the caller re-applies the rest after a
//! restart.

pub mod codec;
pub mod error;
pub mod frame;
pub mod vfs;
pub mod wal;

pub use error::{Error, InvalidArgument, Result};
