//! QAStore's single-node storage engine.
//!
//! No network and no Raft here: a [`vfs::Vfs`] every file goes through, the write-ahead log the
//! Raft log store sits on ([`wal`]), an LSM engine ([`Engine`]) made of a memtable
//! ([`memtable`]), SSTables ([`sstable`]), a manifest ([`manifest`]) and leveled compaction
//! ([`compaction`]), and checkpoints of it ([`checkpoint`]). On top of the engine, the exchange
//! layer: records ([`record`]), their key layout ([`keys`]), applying batches ([`apply`]),
//! queries and bars ([`query`], [`calendar`]), the Parquet path ([`olap`]) and a generator of
//! realistic data ([`datagen`]). The engine has no WAL
//! of its own: the Raft log is the WAL, so the engine reports the last log index it has durably
//! flushed and the caller re-applies the rest after a restart.
//!
//! The write-ahead log:
//!
//! ```
//! use qastore_storage::vfs::OsVfs;
//! use qastore_storage::wal::{LogId, Wal, WalEntry, WalOptions};
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("wal");
//! let wal = Wal::open(OsVfs::shared(), &dir, WalOptions::default())?;
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
//! use qastore_storage::{Engine, EngineOptions, WriteBatch};
//! use qastore_storage::vfs::OsVfs;
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("db");
//! let engine = Engine::open(OsVfs::shared(), &dir, EngineOptions::default())?;
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
//! Exchange records: apply a batch, query it, build bars, convert a closed day to Parquet:
//!
//! ```
//! use qastore_storage::apply::apply;
//! use qastore_storage::batch::WriteBatch;
//! use qastore_storage::calendar::TradingCalendar;
//! use qastore_storage::keys::Stream;
//! use qastore_storage::olap;
//! use qastore_storage::query::{bars::bars, BarSource, PageRequest, Period, Queries, TimeRange};
//! use qastore_storage::record::{samples, validate_batch};
//! use qastore_storage::vfs::OsVfs;
//! use qastore_storage::{Engine, EngineOptions};
//! # let tmp = tempfile::tempdir()?;
//! let engine = Engine::open(OsVfs::shared(), tmp.path().join("db"), EngineOptions::default())?;
//! let records = samples::records();      // one OrderInsert, OrderUpdate, TradeExecuted, ...
//! validate_batch(&records)?;              // what the leader checks before proposing
//! let outcomes = apply(&engine, &records, 1)?; // one atomic engine batch at log index 1
//!
//! let q = Queries::new(&engine);
//! let order = q.order("u1001", "o-20241202-0001")?;
//! let orders = q.orders("u1001", /* only_alive */ false, /* with_history */ true)?;
//! let page = q.ticks("IF2412", TimeRange::all(), &PageRequest::first(1000))?;
//! // page.next, if set, resumes the range: PageRequest { limit: 1000, token: page.next }
//! let calendar = TradingCalendar::builtin();
//! let minute_bars = bars(&engine, &calendar, "IF2412", BarSource::Ticks, Period::Minute1, TimeRange::all())?;
//!
//! // At log index 2, the trading day 2024-12-02 of ticks becomes Parquet files.
//! let converted = olap::convert_day(&engine, Stream::Ticks, 20241202, 2, WriteBatch::new())?;
//! # assert_eq!(outcomes.len(), 7);
//! # assert!(order.is_some());
//! # assert_eq!(orders[0].history.len(), 3);
//! # assert_eq!(page.items.len(), 1);
//! # assert_eq!(minute_bars.len(), 1);
//! # assert_eq!(converted.partitions.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Checkpoints, streamed to a peer and switched to:
//!
//! ```
//! use bytes::Bytes;
//! use qastore_storage::checkpoint::{verify, CheckpointStore, EngineHome};
//! use qastore_storage::vfs::OsVfs;
//! use qastore_storage::{Engine, EngineOptions, WriteBatch};
//! # let tmp = tempfile::tempdir()?;
//! # let root = tmp.path();
//! # let engine = Engine::open(OsVfs::shared(), root.join("db"), EngineOptions::default())?;
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
//! let peer_engine = Engine::open(OsVfs::shared(), dir, EngineOptions::default())?;
//! assert_eq!(peer_engine.flushed_index(), info.meta.log_index);
//! # assert_eq!(peer_engine.get(b"k")?.as_deref(), Some(&b"v"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod apply;
pub mod batch;
pub mod calendar;
pub mod checkpoint;
pub mod codec;
pub mod compaction;
pub mod datagen;
pub mod dedup;
pub mod engine;
pub mod entry;
pub mod error;
pub mod filenames;
pub mod frame;
pub mod ikey;
pub mod keys;
pub mod manifest;
pub mod memtable;
pub mod merge;
pub mod olap;
pub mod query;
pub mod record;
pub mod sstable;
pub mod version;
pub mod version_set;
pub mod vfs;
pub mod wal;

pub use batch::{BatchOp, WriteBatch};
pub use engine::{
    Engine, EngineIter, EngineOptions, EngineStats, LevelStats, TableInfo, WritePressure,
};
pub use error::{Error, InvalidArgument, Result};
