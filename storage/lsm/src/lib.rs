//! QAStore's LSM storage engine.
//!
//! A generic, single-node key-value engine over bytes: a [`vfs::Vfs`] every file goes through,
//! the write-ahead log the Raft log store sits on ([`wal`]), an LSM engine ([`Engine`]) made of
//! a memtable, SSTables, a manifest and leveled compaction, and checkpoints of it
//! ([`checkpoint`]). The engine has no WAL of its own: the Raft log is the WAL, so the engine
//! reports the last log index it has durably flushed and the caller re-applies the rest after a
//! restart.
//!
//! What it is not: it knows nothing of exchange records, their key layout, queries or Parquet
//! (those live in `qastore-exchange`, on top of it), and nothing of the network or Raft.
//! Files an owner keeps beside the tables travel in checkpoints as opaque extra directories.
//!
//! The public surface:
//!
//! * at the root, the engine and what its API speaks in: [`Engine`], [`EngineConfig`],
//!   [`WriteBatch`], the table settings inside [`EngineConfig`] ([`TableConfig`]), the stats
//!   types, [`Error`] and [`Result`];
//! * [`vfs`]: the file-system seam (the real one and a simulated one with power cuts and
//!   faults), which every caller passes in;
//! * [`wal`]: the write-ahead log, used directly by the Raft log store;
//! * [`checkpoint`]: creating, streaming, installing and switching to checkpoints;
//! * [`codec`]: the varint and fixed-width helpers other crates encode their own records with;
//! * [`memtable`] and [`ikey`]: the in-memory table and internal key layout, public so that
//!   benchmarks can measure them on their own.
//!
//! SSTables, the manifest, versions, merging and compaction are internal.
//!
//! The write-ahead log:
//!
//! ```
//! use qastore_lsm::vfs::OsVfs;
//! use qastore_lsm::wal::{LogId, Wal, WalEntry, WalConfig};
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("wal");
//! let wal = Wal::open(OsVfs::shared(), &dir, WalConfig::default())?;
//! wal.append(&[WalEntry::new(1, 1, b"first".to_vec())], |durable| {
//!     // Runs on the flusher thread once the entry is fsynced, or with the error that stopped
//!     // the WAL. Keep it short: hand the result to a channel.
//!     let _ = durable;
//! })?;
//! wal.append_sync(&[WalEntry::new(2, 1, b"second".to_vec())])?; // waits for durability
//! let entries = wal.read(1..3)?;
//! wal.truncate_after(1)?;                   // durable before it returns
//! wal.purge_up_to(LogId::new(1, 1))?;       // whole segments, metadata kept
//! # assert_eq!(entries.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The engine:
//!
//! ```
//! use std::ops::Bound;
//! use qastore_lsm::{Engine, EngineConfig, WriteBatch};
//! use qastore_lsm::vfs::OsVfs;
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("db");
//! let engine = Engine::open(OsVfs::shared(), &dir, EngineConfig::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put("order/u1/42", "ALIVE").delete("order/u1/41");
//! engine.apply(&batch, 7)?;                         // log index 7
//! let value = engine.get(b"order/u1/42")?;
//! for row in engine.scan(Bound::Included(&b"order/u1/"[..]), Bound::Unbounded) {
//!     let (key, value) = row?;
//!     println!("{key:?} = {value:?}");
//! }
//! let alive = engine.scan_prefix(b"order/u1/").count();
//! engine.flush()?;                                  // everything up to index 7 is now in tables
//! assert_eq!(engine.flushed_index(), 7);
//! # assert_eq!(value.as_deref(), Some(&b"ALIVE"[..]));
//! # assert_eq!(alive, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Checkpoints, streamed to a peer and switched to:
//!
//! ```
//! use bytes::Bytes;
//! use qastore_lsm::checkpoint::{verify, CheckpointStore, EngineHome};
//! use qastore_lsm::vfs::OsVfs;
//! use qastore_lsm::{Engine, EngineConfig, WriteBatch};
//! # let tmp = tempfile::tempdir()?;
//! # let root = tmp.path();
//! # let engine = Engine::open(OsVfs::shared(), root.join("db"), EngineConfig::default())?;
//! # let mut batch = WriteBatch::new();
//! # batch.put("k", "v");
//! # engine.apply(&batch, 1)?;
//! // A store keeps the newest two checkpoints (older ones go once nobody reads them).
//! let store = CheckpointStore::open(OsVfs::shared(), root.join("checkpoints"), 2)?;
//! engine.flush()?;
//! let info = store.create(&engine, Bytes::from_static(b"membership"))?;
//! verify(&OsVfs, &info.dir)?;                       // every file's size, CRC and blocks
//!
//! // Streaming to a peer (here a second store): a lease pins the checkpoint while it is read.
//! let peer_store = CheckpointStore::open(OsVfs::shared(), root.join("peer/checkpoints"), 2)?;
//! let lease = store.lease(&info.name())?;
//! let mut installer = peer_store.begin_install(lease.info().meta.clone())?;
//! for f in &lease.info().meta.files {
//!     let chunk = lease.read_chunk(&f.name, 0, f.size as usize)?;
//!     installer.write(&f.name, 0, &chunk)?;
//! }
//! let installed = installer.finish()?;              // checked, then made durable
//!
//! // The receiving node switches its engine to it (the old engine closed first).
//! let mut home = EngineHome::open(OsVfs::shared(), root.join("peer/engine"))?;
//! let dir = home.switch_to(&installed)?;
//! let peer_engine = Engine::open(OsVfs::shared(), dir, EngineConfig::default())?;
//! assert_eq!(peer_engine.flushed_index(), info.meta.log_index);
//! # assert_eq!(peer_engine.get(b"k")?.as_deref(), Some(&b"v"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod background;
mod batch;
pub mod checkpoint;
pub mod codec;
mod compaction;
mod engine;
mod entry;
mod error;
mod filenames;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod ikey;
mod manifest;
pub mod memtable;
mod merge;
mod sstable;
mod version;
mod version_set;
pub mod vfs;
pub mod wal;

pub use batch::{BatchOp, WriteBatch};
pub use engine::{
    Engine, EngineConfig, EngineIter, EngineStats, LevelStats, ReadView, TableInfo, WritePressure,
};
pub use error::{Error, InvalidArgument, Result};
pub use sstable::TableConfig;
