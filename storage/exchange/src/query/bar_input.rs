//! The few fields bars need of each tick or trade, read without decoding whole records: the
//! archived value is inspected in place on the LSM side, and only six columns are read from
//! Parquet files.

use super::range::{scan_keys, TimeRange};
use super::stream::{with_partitions, Groups, Keyed, Loader};
use crate::error::{Error, Result};
use crate::keys::{self, Stream};
use crate::olap;
use crate::record::{inspect, DecodeError, Tick, TradeExecuted};
use qastore_lsm::Engine;

/// What a bar takes from one tick or trade.
#[derive(Debug, Clone, PartialEq)]
pub struct BarInput {
    /// The trading day of the event.
    pub trading_day: u32,
    /// Event time, epoch nanoseconds.
    pub time: i64,
    /// Last price (ticks) or trade price.
    pub price: f64,
    /// Cumulative volume of the day (ticks) or the trade's volume.
    pub volume: i64,
    /// Cumulative turnover of the day (ticks); zero for trades.
    pub amount: f64,
    /// Open interest (ticks only).
    pub open_interest: Option<i64>,
    /// The exchange's trade id, shared by buyer and seller (trades only; empty for ticks).
    pub exchange_trade_id: String,
}

/// Ticks sort by (time, sequence), as their keys do.
pub type TickOrder = (i64, u64);

fn bad_value(key: &[u8], e: DecodeError) -> Error {
    Error::bad_value(String::from_utf8_lossy(key).into_owned(), e.to_string())
}

/// What bars need of `instrument`'s ticks in `range`, in (time, sequence) order.
pub fn tick_inputs<'a>(
    engine: &'a Engine,
    instrument: &str,
    range: TimeRange,
) -> Result<Keyed<'a, TickOrder, BarInput>> {
    let lsm: Keyed<'a, TickOrder, BarInput> = Box::new(
        scan_keys(
            engine,
            keys::instrument_ticks_at(instrument, range.from),
            keys::instrument_ticks_at(instrument, range.to),
            None,
        )
        .map(|row| {
            let (k, v) = row?;
            inspect::<Tick, _>(&v, |t| {
                let time = t.datetime.to_native();
                let input = BarInput {
                    trading_day: t.trading_day.to_native(),
                    time,
                    price: t.last_price.to_native(),
                    volume: t.volume.to_native(),
                    amount: t.amount.to_native(),
                    open_interest: Some(t.open_interest.to_native()),
                    exchange_trade_id: String::new(),
                };
                ((time, t.sequence.to_native()), input)
            })
            .map_err(|e| bad_value(&k, e))
        }),
    );
    let load: Loader<'a, TickOrder, BarInput> = Box::new(move |entry| {
        let entry = entry.clone();
        let groups = olap::partition_tick_bar_inputs(engine, &entry, range)?;
        Ok(
            Box::new(groups.map(move |g| g.map_err(|e| olap::group_error(engine, &entry, e))))
                as Groups<'a, TickOrder, BarInput>,
        )
    });
    with_partitions(engine, Stream::Ticks, instrument, range, None, lsm, load)
}

/// What bars need of `instrument`'s trades in `range`, in key order (time, user, trade id).
pub fn trade_inputs<'a>(
    engine: &'a Engine,
    instrument: &str,
    range: TimeRange,
) -> Result<Keyed<'a, Vec<u8>, BarInput>> {
    let lsm: Keyed<'a, Vec<u8>, BarInput> = Box::new(
        scan_keys(
            engine,
            keys::instrument_trades_at(instrument, range.from),
            keys::instrument_trades_at(instrument, range.to),
            None,
        )
        .map(|row| {
            let (k, v) = row?;
            let input = inspect::<TradeExecuted, _>(&v, |t| BarInput {
                trading_day: t.trading_day.to_native(),
                time: t.trade_date_time.to_native(),
                price: t.price.to_native(),
                volume: t.volume.to_native(),
                amount: 0.0,
                open_interest: None,
                exchange_trade_id: t.exchange_trade_id.as_str().to_string(),
            })
            .map_err(|e| bad_value(&k, e))?;
            Ok((k.to_vec(), input))
        }),
    );
    let load: Loader<'a, Vec<u8>, BarInput> = Box::new(move |entry| {
        let entry = entry.clone();
        let groups = olap::partition_trade_bar_inputs(engine, &entry, range)?;
        Ok(
            Box::new(groups.map(move |g| g.map_err(|e| olap::group_error(engine, &entry, e))))
                as Groups<'a, Vec<u8>, BarInput>,
        )
    });
    with_partitions(engine, Stream::Trades, instrument, range, None, lsm, load)
}
