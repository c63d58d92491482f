//! Bars as the public API pages them: built by the storage crate, cut into pages whose token
//! resumes at the end of the last bar returned.
//!
//! A bar's bounds come from the trading calendar, so a page that resumes at the previous
//! page's last bar end builds exactly the bars the whole range would have had from there on
//! (volume deltas still start from the tick before the resumed range).

use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::query::bars::{bars, Bar, BarSource, Period};
use qastore_exchange::query::page::token_after;
use qastore_exchange::query::{PageRequest, Queries, TimeRange};
use qastore_exchange::InvalidArgument;
use qastore_lsm::Engine;
use qastore_proto::v1 as pb;

use crate::error::ApiError;

/// What one GetBars call asks for, checked.
#[derive(Debug, Clone)]
pub struct BarQuery {
    /// The instrument.
    pub instrument: String,
    /// Built from ticks or trades.
    pub source: BarSource,
    /// The bar length.
    pub period: Period,
    /// The wire values of source and period: they tie a page token to its query.
    pub wire_kind: (i32, i32),
    /// The requested range.
    pub range: TimeRange,
}

/// One page of bars and the token of the next (empty when none).
pub fn bars_page(
    engine: &Engine,
    calendar: &TradingCalendar,
    q: &BarQuery,
    page: &PageRequest,
) -> Result<(Vec<pb::Bar>, bytes::Bytes), ApiError> {
    q.range.check()?;
    let limit = page.limit()?;
    let prefix = token_prefix(q);
    let after = match page.resume_after(&prefix)? {
        None => None,
        Some(key) => Some(resume_time(&key[prefix.len()..])?),
    };
    let from = after.map_or(q.range.from, |a| a.max(q.range.from));
    if from >= q.range.to {
        return Ok((Vec::new(), bytes::Bytes::new()));
    }
    if calendar.group_of(&q.instrument).is_none() && !has_data(engine, q)? {
        // Like ticks and trades, an instrument nothing was written for has nothing to show;
        // the calendar only matters once there is data to cut into bars.
        return Ok((Vec::new(), bytes::Bytes::new()));
    }
    let all = bars(
        engine,
        calendar,
        &q.instrument,
        q.source,
        q.period,
        TimeRange::new(from, q.range.to),
    )?;
    let mut rest = all
        .into_iter()
        .filter(|b| after.is_none_or(|a| b.start >= a));
    let out: Vec<Bar> = rest.by_ref().take(limit).collect();
    let next = match (rest.next(), out.last()) {
        (Some(_), Some(last)) => {
            let mut key = prefix;
            key.extend_from_slice(&last.end.to_be_bytes());
            token_after(&key)
        }
        _ => bytes::Bytes::new(),
    };
    Ok((out.iter().map(bar_to_pb).collect(), next))
}

/// Whether any tick or trade (as the query's source says) of the instrument lies in its range.
fn has_data(engine: &Engine, q: &BarQuery) -> Result<bool, ApiError> {
    let queries = Queries::new(engine);
    let one = PageRequest::first(1);
    Ok(match q.source {
        BarSource::Ticks => !queries
            .ticks(&q.instrument, q.range, &one)?
            .items
            .is_empty(),
        BarSource::Trades => !queries
            .trades(&q.instrument, q.range, &one)?
            .items
            .is_empty(),
    })
}

/// The part of a token naming its query: instrument, source and period.
fn token_prefix(q: &BarQuery) -> Vec<u8> {
    let mut p = b"bars\0".to_vec();
    p.extend_from_slice(q.instrument.as_bytes());
    p.push(0);
    p.extend_from_slice(&q.wire_kind.0.to_be_bytes());
    p.extend_from_slice(&q.wire_kind.1.to_be_bytes());
    p
}

fn resume_time(rest: &[u8]) -> Result<i64, ApiError> {
    let bytes: [u8; 8] = rest.try_into().map_err(|_| {
        ApiError::from(qastore_exchange::Error::from(InvalidArgument::BadPageToken))
    })?;
    Ok(i64::from_be_bytes(bytes))
}

/// A bar on the wire.
pub fn bar_to_pb(b: &Bar) -> pb::Bar {
    pb::Bar {
        start: b.start,
        end: b.end,
        trading_day: b.trading_day,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
        amount: b.amount,
        open_interest_open: b.open_interest_open,
        open_interest_close: b.open_interest_close,
        count: b.count,
    }
}
