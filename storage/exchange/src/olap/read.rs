//! Reading one partition back, checking the whole file against the catalog's CRC first.

use bytes::Bytes;

use super::catalog::CatalogEntry;
use super::parquet::{
    decode_ticks, decode_trades, tick_bar_inputs, tick_events, tick_groups, trade_bar_inputs,
    trade_events, trade_groups, GroupReader, RowOrigin,
};
use crate::error::{Error, Result};
use crate::query::bar_input::{BarInput, TickOrder};
use crate::query::TimeRange;
use crate::record::{Tick, TradeExecuted};
use parquet::errors::ParquetError;
use qastore_lsm::Engine;

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

/// A decoding error of `entry`'s file, as a corruption error naming it.
pub(crate) fn group_error(
    engine: &Engine,
    entry: &CatalogEntry,
    e: impl std::fmt::Display,
) -> Error {
    Error::corruption(engine.dir().join(&entry.file), 0, format!("Parquet: {e}"))
}

/// The ticks of `range` in a tick partition.
pub fn read_partition_ticks(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<Vec<Tick>> {
    let bytes = load(engine, entry)?;
    decode_ticks(bytes, entry.trading_day, &entry.instrument, range)
        .map_err(|e| group_error(engine, entry, e))
}

/// The trades of `range` in a trade partition.
pub fn read_partition_trades(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<Vec<TradeExecuted>> {
    let bytes = load(engine, entry)?;
    decode_trades(bytes, entry.trading_day, &entry.instrument, range)
        .map_err(|e| group_error(engine, entry, e))
}

/// A tick partition read a row group at a time.
pub fn partition_tick_groups(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<GroupReader<Tick>> {
    let bytes = load(engine, entry)?;
    tick_groups(bytes, entry.trading_day, &entry.instrument, range)
        .map_err(|e| group_error(engine, entry, e))
}

/// A trade partition read a row group at a time.
pub fn partition_trade_groups(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<GroupReader<TradeExecuted>> {
    let bytes = load(engine, entry)?;
    trade_groups(bytes, entry.trading_day, &entry.instrument, range)
        .map_err(|e| group_error(engine, entry, e))
}

/// What bars need from a tick partition, a row group at a time (only the needed columns).
pub fn partition_tick_bar_inputs(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<GroupReader<(TickOrder, BarInput)>> {
    let bytes = load(engine, entry)?;
    tick_bar_inputs(bytes, entry.trading_day, range).map_err(|e| group_error(engine, entry, e))
}

/// What bars need from a trade partition, a row group at a time (only the needed columns).
pub fn partition_trade_bar_inputs(
    engine: &Engine,
    entry: &CatalogEntry,
    range: TimeRange,
) -> Result<GroupReader<(Vec<u8>, BarInput)>> {
    let bytes = load(engine, entry)?;
    trade_bar_inputs(bytes, entry.trading_day, &entry.instrument, range)
        .map_err(|e| group_error(engine, entry, e))
}

/// Every tick of a tick partition with where it came from.
pub fn partition_tick_events(
    engine: &Engine,
    entry: &CatalogEntry,
) -> Result<Vec<(RowOrigin, Tick)>> {
    let bytes = load(engine, entry)?;
    collect_events(tick_events(bytes, entry.trading_day, &entry.instrument))
        .map_err(|e| group_error(engine, entry, e))
}

/// Every trade of a trade partition with where it came from.
pub fn partition_trade_events(
    engine: &Engine,
    entry: &CatalogEntry,
) -> Result<Vec<(RowOrigin, TradeExecuted)>> {
    let bytes = load(engine, entry)?;
    collect_events(trade_events(bytes, entry.trading_day, &entry.instrument))
        .map_err(|e| group_error(engine, entry, e))
}

fn collect_events<T>(
    groups: std::result::Result<GroupReader<T>, ParquetError>,
) -> std::result::Result<Vec<T>, ParquetError> {
    let mut out = Vec::new();
    for g in groups? {
        out.extend(g?);
    }
    Ok(out)
}
