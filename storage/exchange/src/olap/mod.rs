//! The OLAP path: closed trading days of ticks and trades as Parquet files that pyarrow, pandas,
//! polars and duckdb open as they are.
//!
//! ```text
//! <engine dir>/olap/<ticks|trades>/trading_day=YYYYMMDD/instrument=<id>/part-0.parquet
//! ```
//!
//! [`convert_day`] and [`retain`] are engine operations that take the log index they run at;
//! [`catalog`] records what was converted (replicated with the rest of the engine's state, and
//! the files travel with checkpoints taken through [`create_checkpoint`] or [`write_checkpoint`],
//! which hold [`lock`] while the engine copies them). Range queries and bars read Parquet for converted days,
//! skipping row groups by their time statistics, and the LSM for the rest, with the same
//! answers either way.

pub mod catalog;
mod checkpoint;
mod convert;
mod lock;
pub mod origin;
pub mod parquet;
mod pending;
mod read;
mod retain;

pub use catalog::CatalogEntry;
pub use checkpoint::{create_checkpoint, write_checkpoint, MakeBlob};
pub use convert::{convert_day, Conversion};
pub use lock::{lock, OlapGuard, CHECKPOINT_DIRS, OLAP_DIR};
pub use origin::{part_span, replay_floor};
pub use parquet::IndexSpan;
pub use parquet::RowOrigin;
pub use pending::pending_days;
pub(crate) use read::group_error;
pub use read::{
    partition_tick_bar_inputs, partition_tick_groups, partition_trade_bar_inputs,
    partition_trade_groups, read_partition_ticks, read_partition_trades, EventPart,
};
pub use retain::{retain, sweep, would_drop, Retention, RetentionConfig, RetentionPolicy, Sweep};
