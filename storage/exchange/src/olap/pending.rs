//! Which trading days still have rows in the LSM: what a conversion schedule has left to do.

use std::collections::BTreeSet;

use super::catalog;
use super::convert::instruments;
use crate::error::{Error, Result};
use crate::keys::{self, Stream};
use crate::query::range::scan_keys;
use crate::record::{inspect, Tick, TradeExecuted};
use qastore_lsm::Engine;

/// Steps past removed days per instrument before giving up on it for this call (rows that came
/// for a day after retention removed its partition stay in the LSM and are read from there).
const MAX_SKIPS: usize = 64;

/// The trading day and time of the first row of `instrument` at or after `from`.
fn first_row(
    engine: &Engine,
    stream: Stream,
    instrument: &str,
    from: i64,
) -> Result<Option<(u32, i64)>> {
    let (lower, upper) = match stream {
        Stream::Ticks => (
            keys::instrument_ticks_at(instrument, from),
            keys::instrument_ticks_at(instrument, i64::MAX),
        ),
        Stream::Trades => (
            keys::instrument_trades_at(instrument, from),
            keys::instrument_trades_at(instrument, i64::MAX),
        ),
    };
    let Some(row) = scan_keys(engine, lower, upper, None).next() else {
        return Ok(None);
    };
    let (k, v) = row?;
    let bad = |e: crate::record::DecodeError| {
        Error::bad_value(String::from_utf8_lossy(&k).into_owned(), e.to_string())
    };
    let found = match stream {
        Stream::Ticks => {
            inspect::<Tick, _>(&v, |t| (t.trading_day.to_native(), t.datetime.to_native()))
        }
        Stream::Trades => inspect::<TradeExecuted, _>(&v, |t| {
            (t.trading_day.to_native(), t.trade_date_time.to_native())
        }),
    }
    .map_err(bad)?;
    Ok(Some(found))
}

/// For each instrument of `stream`, the earliest trading day that has rows in the LSM: a day
/// not converted yet, or a converted day that received rows since (late rows, converted as the
/// partition's next part). Days whose partition retention removed are passed over. Converting
/// the smallest of these, then asking again, walks through every pending day in order.
pub fn pending_days(engine: &Engine, stream: Stream) -> Result<BTreeSet<u32>> {
    let mut days = BTreeSet::new();
    for instrument in instruments(engine, stream)? {
        let converted = catalog::for_instrument(engine, stream, &instrument)?;
        let mut from = i64::MIN;
        for _ in 0..MAX_SKIPS {
            let Some((day, time)) = first_row(engine, stream, &instrument, from)? else {
                break;
            };
            let removed = converted
                .iter()
                .filter(|e| !e.is_live() && e.trading_day == day)
                .map(|e| e.max_time)
                .max();
            match removed {
                Some(max_time) => from = time.max(max_time).saturating_add(1),
                None => {
                    days.insert(day);
                    break;
                }
            }
        }
    }
    Ok(days)
}
