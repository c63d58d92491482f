//! QAStore's exchange layer, on top of the LSM engine (`qastore-lsm`).
//!
//! Records ([`record`]) and their key layout ([`keys`]), applying batches of them ([`apply`]),
//! a client's write as its log entry carries it ([`EncodedWrite`]), the commands a replicated
//! log carries ([`Command`]) and applying one committed entry, with request deduplication
//! ([`ExchangeMachine`]) under the replicated settings ([`ClusterConfig`]), queries and bars
//! ([`query`], [`calendar`]), the Parquet path ([`olap`]), durable consumers ([`consumer`]),
//! the access table and the audit trail of operators' actions ([`access`], [`audit`]),
//! what subscriptions are made of ([`feed`]: positions, filters, committed batches, journal
//! reads, conflation) and a generator of realistic data ([`datagen`]).
//!
//! What it is not: no storage engine (it works on a [`qastore_lsm::Engine`] its caller opens,
//! and does not re-export it: import engine types from `qastore_lsm`), and no network or Raft.
//! It owns the `olap` directory beside the engine's tables and the lock that keeps it still
//! while checkpoints copy it ([`olap::create_checkpoint`]).
//!
//! The public surface: the modules linked above are used by the node, the benchmarks or the
//! test kit, each with its own curated items; the write, the commands, the machine that applies
//! them, the replicated settings and the crate's error types ([`Error`], [`InvalidArgument`],
//! [`Result`]) are at the root. Deduplication is internal to applying.
//!
//! Exchange records: apply a batch, query it, build bars, convert a closed day to Parquet:
//!
//! ```
//! use qastore_exchange::apply::apply;
//! use qastore_exchange::calendar::TradingCalendar;
//! use qastore_exchange::keys::Stream;
//! use qastore_exchange::olap;
//! use qastore_exchange::query::{bars::bars, BarSource, PageRequest, Period, Queries, TimeRange};
//! use qastore_exchange::record::{samples, validate_batch};
//! use qastore_lsm::vfs::OsVfs;
//! use qastore_lsm::{Engine, EngineConfig, WriteBatch};
//! # let tmp = tempfile::tempdir()?;
//! let engine = Engine::open(OsVfs::shared(), tmp.path().join("db"), EngineConfig::default())?;
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
//! A checkpoint that carries the Parquet files:
//!
//! ```
//! use bytes::Bytes;
//! use qastore_exchange::olap;
//! use qastore_lsm::checkpoint::CheckpointStore;
//! use qastore_lsm::vfs::OsVfs;
//! use qastore_lsm::{Engine, EngineConfig};
//! # let tmp = tempfile::tempdir()?;
//! let engine = Engine::open(OsVfs::shared(), tmp.path().join("db"), EngineConfig::default())?;
//! let store = CheckpointStore::open(OsVfs::shared(), tmp.path().join("checkpoints"), 2)?;
//! engine.flush()?;
//! let info = olap::create_checkpoint(&store, &engine, |_| Ok(Bytes::new()))?;
//! assert_eq!(info.meta.extra_dirs, [olap::OLAP_DIR]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod access;
pub mod apply;
pub mod audit;
pub mod calendar;
mod cluster_config;
mod command;
pub mod consumer;
pub mod datagen;
mod dedup;
mod error;
pub mod feed;
pub mod keys;
mod machine;
pub mod olap;
pub mod query;
pub mod record;
mod write;

pub use cluster_config::ClusterConfig;
pub use command::{
    payload_hash, AccessChange, Ack, Command, Response, StreamKind, SystemCommand, WriteCommand,
};
pub use error::{Error, InvalidArgument, Result};
pub use machine::{EntryContent, ExchangeMachine};
pub use write::{EncodedWrite, InvalidWrite};
