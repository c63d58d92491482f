//! Time-ordered streams of one instrument's ticks or trades over a range, each item with its
//! key (which page tokens resume from).

use super::decode_at;
use super::range::{scan_keys, TimeRange};
use crate::engine::Engine;
use crate::error::Result;
use crate::keys;
use crate::record::{Tick, TradeExecuted};

/// A stream of (key, item).
pub type Stream<'a, T> = Box<dyn Iterator<Item = Result<(Vec<u8>, T)>> + 'a>;

/// An instrument's ticks in `range`, after `resume` if given, in (time, sequence) order.
pub fn tick_stream<'a>(
    engine: &'a Engine,
    instrument: &str,
    range: TimeRange,
    resume: Option<Vec<u8>>,
) -> Result<Stream<'a, Tick>> {
    let rows = scan_keys(
        engine,
        keys::instrument_ticks_at(instrument, range.from),
        keys::instrument_ticks_at(instrument, range.to),
        resume,
    )
    .map(|row| {
        let (k, v) = row?;
        Ok((k.to_vec(), decode_at::<Tick>(&k, &v)?))
    });
    Ok(Box::new(rows))
}

/// An instrument's trades in `range`, after `resume` if given, in time order.
pub fn trade_stream<'a>(
    engine: &'a Engine,
    instrument: &str,
    range: TimeRange,
    resume: Option<Vec<u8>>,
) -> Result<Stream<'a, TradeExecuted>> {
    let rows = scan_keys(
        engine,
        keys::instrument_trades_at(instrument, range.from),
        keys::instrument_trades_at(instrument, range.to),
        resume,
    )
    .map(|row| {
        let (k, v) = row?;
        Ok((k.to_vec(), decode_at::<TradeExecuted>(&k, &v)?))
    });
    Ok(Box::new(rows))
}
