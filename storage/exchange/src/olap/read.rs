//! Reading one partition back, checking the whole file against the catalog's CRC first.

use bytes::Bytes;

use super::catalog::CatalogEntry;
use super::parquet::{
    decode_ticks, decode_trades, tick_bar_inputs, tick_events, tick_groups, tick_index_spans,
    trade_bar_inputs, trade_events, trade_groups, trade_index_spans, GroupReader, IndexSpan,
    RowOrigin,
};
use crate::error::{Error, Result};
use crate::keys::Stream;
use crate::query::bar_input::{BarInput, TickOrder};
use crate::query::TimeRange;
use crate::record::{Record, Tick, TradeExecuted};
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

/// A tick or trade partition opened (and checked against the catalog) for reading its events
/// by log index: the row groups' spans first, then only the groups a window needs.
pub struct EventPart {
    entry: CatalogEntry,
    bytes: Bytes,
}

impl EventPart {
    /// Opens `entry`'s file.
    pub fn open(engine: &Engine, entry: &CatalogEntry) -> Result<EventPart> {
        Ok(EventPart {
            entry: entry.clone(),
            bytes: load(engine, entry)?,
        })
    }

    /// The log index span of each of its row groups.
    pub fn spans(&self, engine: &Engine) -> Result<Vec<IndexSpan>> {
        let spans = match self.entry.stream() {
            Stream::Ticks => tick_index_spans(self.bytes.clone()),
            Stream::Trades => trade_index_spans(self.bytes.clone()),
        };
        spans.map_err(|e| group_error(engine, &self.entry, e))
    }

    /// Calls `f` with every row of the row groups `groups`, a group decoded at a time.
    pub fn for_each_event(
        &self,
        engine: &Engine,
        groups: &[usize],
        mut f: impl FnMut(RowOrigin, Record),
    ) -> Result<()> {
        let (day, instrument) = (self.entry.trading_day, self.entry.instrument.as_str());
        let read = match self.entry.stream() {
            Stream::Ticks => tick_events(self.bytes.clone(), day, instrument).and_then(|g| {
                for rows in g.only(groups) {
                    rows?.into_iter().for_each(|(o, t)| f(o, Record::Tick(t)));
                }
                Ok(())
            }),
            Stream::Trades => trade_events(self.bytes.clone(), day, instrument).and_then(|g| {
                for rows in g.only(groups) {
                    rows?
                        .into_iter()
                        .for_each(|(o, t)| f(o, Record::TradeExecuted(t)));
                }
                Ok(())
            }),
        };
        read.map_err(|e| group_error(engine, &self.entry, e))
    }
}
