//! Reading one partition back, checking the whole file against the catalog's CRC first.

use bytes::Bytes;

use super::catalog::CatalogEntry;
use super::parquet::{decode_ticks, decode_trades};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::query::TimeRange;
use crate::record::{Tick, TradeExecuted};

fn load(engine: &Engine, entry: &CatalogEntry) -> Result<Bytes> {
    let path = engine.dir().join(&entry.file);
    let bytes = engine.vfs().map(&path)?;
    if bytes.len() as u64 != entry.bytes || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(Error::corruption(
            &path,
            0,
            "Parquet file differs from the catalog's size and checksum",
        ));
    }
    Ok(bytes)
}

fn unreadable(engine: &Engine, entry: &CatalogEntry, e: impl std::fmt::Display) -> Error {
    Error::corruption(engine.dir().join(&entry.file), 0, format!("Parquet: {e}"))
}

/// The ticks of `range` in a tick partition.
pub fn read_partition_ticks(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<Vec<Tick>> {
    let bytes = load(engine, entry)?;
    decode_ticks(bytes, entry.trading_day, range).map_err(|e| unreadable(engine, entry, e))
}

/// The trades of `range` in a trade partition.
pub fn read_partition_trades(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<Vec<TradeExecuted>> {
    let bytes = load(engine, entry)?;
    decode_trades(bytes, entry.trading_day, range).map_err(|e| unreadable(engine, entry, e))
}
