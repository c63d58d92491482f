//! OHLCV bars from ticks or from trades.
//!
//! * From ticks: the last price makes open/high/low/close; the cumulative volume and turnover
//!   of each tick become deltas against the tick before it in the same trading day (the first
//!   tick of a day counts whole, since the counters restart); open interest is taken at the
//!   bar's first and last tick.
//! * From trades: every exchange trade counts once (the buyer's and seller's records share
//!   `exchange_trade_id`); turnover is price x volume x the contract multiplier; trades carry
//!   no open interest.
//!
//! Intraday bars are aligned to local midnight and cut at trading sessions (a 1h bar in a
//! 09:30 to 11:30 session is 09:30-10:00, 10:00-11:00, 11:00-11:30), using the
//! [`TradingCalendar`]. Ticks outside every session are left out of every bar (daily bars
//! included), but the volume they report is not lost: it counts in the next tick's delta. The
//! daily bar is keyed by trading day, so a night session counts towards the next day.

use std::collections::HashSet;

use super::bar_input::{tick_inputs, trade_inputs, BarInput};
use super::range::TimeRange;
use crate::calendar::TradingCalendar;
use crate::error::{InvalidArgument, Result};
use qastore_lsm::Engine;

/// Bar length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// One second.
    Second1,
    /// One minute.
    Minute1,
    /// Five minutes.
    Minute5,
    /// Fifteen minutes.
    Minute15,
    /// Thirty minutes.
    Minute30,
    /// One hour.
    Hour1,
    /// One trading day.
    Day1,
}

impl Period {
    /// The length in seconds of an intraday period; `None` for the daily bar.
    pub fn seconds(self) -> Option<i64> {
        match self {
            Period::Second1 => Some(1),
            Period::Minute1 => Some(60),
            Period::Minute5 => Some(300),
            Period::Minute15 => Some(900),
            Period::Minute30 => Some(1800),
            Period::Hour1 => Some(3600),
            Period::Day1 => None,
        }
    }

    /// Every period, shortest first.
    pub fn all() -> [Period; 7] {
        [
            Period::Second1,
            Period::Minute1,
            Period::Minute5,
            Period::Minute15,
            Period::Minute30,
            Period::Hour1,
            Period::Day1,
        ]
    }
}

/// What bars are built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarSource {
    /// Market ticks.
    Ticks,
    /// Executed trades.
    Trades,
}

/// One OHLCV bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The trading day the bar belongs to.
    pub trading_day: u32,
    /// Start (inclusive, epoch nanoseconds): the bar's bound, or for daily bars the first event.
    pub start: i64,
    /// End (exclusive): the bar's bound, or for daily bars just after the last event.
    pub end: i64,
    /// First price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Last price.
    pub close: f64,
    /// Volume traded in the bar.
    pub volume: i64,
    /// Turnover in the bar.
    pub amount: f64,
    /// Open interest at the bar's first tick (ticks only).
    pub open_interest_open: Option<i64>,
    /// Open interest at the bar's last tick (ticks only).
    pub open_interest_close: Option<i64>,
    /// Ticks or exchange trades aggregated.
    pub count: u64,
}

/// One event to aggregate.
struct Point {
    day: u32,
    price: f64,
    volume: i64,
    amount: f64,
    open_interest: Option<i64>,
}

struct Builder<'c> {
    calendar: &'c TradingCalendar,
    instrument: String,
    period: Period,
    current: Option<Bar>,
    done: Vec<Bar>,
}

impl<'c> Builder<'c> {
    /// The bounds of the bar an event at `time` belongs to; `None` outside every session.
    fn bounds(&self, time: i64) -> Option<(i64, i64)> {
        match self.period.seconds() {
            Some(secs) => self.calendar.bar_bounds(&self.instrument, time, secs),
            None => self
                .calendar
                .session_at(&self.instrument, time)
                .map(|_| (time, time + 1)),
        }
    }

    fn add(&mut self, p: Point, (start, end): (i64, i64)) {
        if let Some(bar) = self.current.as_mut() {
            let same = match self.period {
                Period::Day1 => bar.trading_day == p.day,
                _ => bar.start == start,
            };
            if same {
                bar.high = bar.high.max(p.price);
                bar.low = bar.low.min(p.price);
                bar.close = p.price;
                bar.volume += p.volume;
                bar.amount += p.amount;
                bar.open_interest_close = p.open_interest;
                bar.count += 1;
                if self.period == Period::Day1 {
                    bar.end = end;
                }
                return;
            }
        }
        if let Some(bar) = self.current.take() {
            self.done.push(bar);
        }
        self.current = Some(Bar {
            trading_day: p.day,
            start,
            end,
            open: p.price,
            high: p.price,
            low: p.price,
            close: p.price,
            volume: p.volume,
            amount: p.amount,
            open_interest_open: p.open_interest,
            open_interest_close: p.open_interest,
            count: 1,
        });
    }

    fn finish(mut self) -> Vec<Bar> {
        self.done.extend(self.current.take());
        self.done
    }
}

/// The last in-session tick before `t`, looking back at most a few days.
fn tick_before(
    engine: &Engine,
    calendar: &TradingCalendar,
    instrument: &str,
    t: i64,
) -> Result<Option<BarInput>> {
    const SEC: i64 = 1_000_000_000;
    for window in [60 * SEC, 3600 * SEC, 86_400 * SEC, 5 * 86_400 * SEC] {
        let range = TimeRange::new(t.saturating_sub(window), t);
        let mut last = None;
        for row in tick_inputs(engine, instrument, range)? {
            let tick = row?.1;
            if calendar.session_at(instrument, tick.time).is_some() {
                last = Some(tick);
            }
        }
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

/// Bars of `period` over `range` for `instrument`, built from `source`.
pub fn bars(
    engine: &Engine,
    calendar: &TradingCalendar,
    instrument: &str,
    source: BarSource,
    period: Period,
    range: TimeRange,
) -> Result<Vec<Bar>> {
    range.check()?;
    if calendar.group_of(instrument).is_none() {
        return Err(InvalidArgument::UnknownProduct {
            instrument: instrument.to_string(),
        }
        .into());
    }
    let mut b = Builder {
        calendar,
        instrument: instrument.to_string(),
        period,
        current: None,
        done: Vec::new(),
    };
    match source {
        BarSource::Ticks => {
            let mut prev = tick_before(engine, calendar, instrument, range.from)?
                .map(|t| (t.trading_day, t.volume, t.amount));
            for row in tick_inputs(engine, instrument, range)? {
                let (_, t) = row?;
                let Some(bounds) = b.bounds(t.time) else {
                    continue;
                };
                let (dv, da) = match prev {
                    Some((day, v, a)) if day == t.trading_day => (t.volume - v, t.amount - a),
                    _ => (t.volume, t.amount),
                };
                prev = Some((t.trading_day, t.volume, t.amount));
                b.add(
                    Point {
                        day: t.trading_day,
                        price: t.price,
                        // A counter that went backwards (a feed restart) adds nothing.
                        volume: dv.max(0),
                        amount: da.max(0.0),
                        open_interest: t.open_interest,
                    },
                    bounds,
                );
            }
        }
        BarSource::Trades => {
            let multiplier = calendar.multiplier(instrument).unwrap_or(1.0);
            let mut seen = HashSet::new();
            for row in trade_inputs(engine, instrument, range)? {
                let (_, t) = row?;
                let Some(bounds) = b.bounds(t.time) else {
                    continue;
                };
                if !seen.insert(t.exchange_trade_id) {
                    continue;
                }
                b.add(
                    Point {
                        day: t.trading_day,
                        price: t.price,
                        volume: t.volume,
                        amount: t.price * t.volume as f64 * multiplier,
                        open_interest: None,
                    },
                    bounds,
                );
            }
        }
    }
    Ok(b.finish())
}
