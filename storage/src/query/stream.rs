//! Time-ordered streams of one instrument's ticks or trades over a range, each item with its
//! key (which page tokens resume from).
//!
//! Days converted to Parquet are read from their files (oldest first, loading one partition at
//! a time); everything else from the LSM; the two are merged by key. After a conversion the LSM
//! no longer holds the converted rows, so each row comes from exactly one side.

use super::decode_at;
use super::range::{scan_keys, TimeRange};
use crate::engine::Engine;
use crate::error::Result;
use crate::keys::{self, Stream};
use crate::olap::{self, CatalogEntry};
use crate::record::{Tick, TradeExecuted};

/// A stream of (key, item).
pub type Rows<'a, T> = Box<dyn Iterator<Item = Result<(Vec<u8>, T)>> + 'a>;

/// Row groups of one partition, each as (key, item) rows.
type Groups<'a, T> = Box<dyn Iterator<Item = Result<Vec<(Vec<u8>, T)>>> + 'a>;

type Loader<'a, T> = Box<dyn FnMut(&CatalogEntry) -> Result<Groups<'a, T>> + 'a>;

/// Rows of converted partitions, one row group in memory at a time.
struct Partitions<'a, T> {
    pending: std::vec::IntoIter<CatalogEntry>,
    groups: Option<Groups<'a, T>>,
    current: std::vec::IntoIter<(Vec<u8>, T)>,
    load: Loader<'a, T>,
    resume: Option<Vec<u8>>,
    failed: bool,
}

impl<T> Iterator for Partitions<'_, T> {
    type Item = Result<(Vec<u8>, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(row) = self.current.next() {
                if self.resume.as_ref().is_some_and(|r| row.0 <= *r) {
                    continue;
                }
                return Some(Ok(row));
            }
            if let Some(groups) = self.groups.as_mut() {
                match groups.next() {
                    Some(Ok(rows)) => {
                        self.current = rows.into_iter();
                        continue;
                    }
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => self.groups = None,
                }
            }
            let entry = self.pending.next()?;
            match (self.load)(&entry) {
                Ok(groups) => self.groups = Some(groups),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Merges two key-ordered streams (the second wins a tie, which does not happen in practice).
struct Merge<'a, T> {
    a: std::iter::Peekable<Rows<'a, T>>,
    b: std::iter::Peekable<Rows<'a, T>>,
}

impl<T> Iterator for Merge<'_, T> {
    type Item = Result<(Vec<u8>, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Err(_)), _) => true,
            (_, Some(Err(_))) => false,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka < kb,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

fn with_partitions<'a, T: 'a>(
    engine: &'a Engine,
    stream: Stream,
    instrument: &str,
    range: TimeRange,
    resume: Option<Vec<u8>>,
    lsm: Rows<'a, T>,
    load: Loader<'a, T>,
) -> Result<Rows<'a, T>> {
    let parts: Vec<CatalogEntry> = olap::catalog::for_instrument(engine, stream, instrument)?
        .into_iter()
        .filter(|e| e.is_live() && e.max_time >= range.from && e.min_time < range.to)
        .collect();
    if parts.is_empty() {
        return Ok(lsm);
    }
    let olap: Rows<'a, T> = Box::new(Partitions {
        pending: parts.into_iter(),
        groups: None,
        current: Vec::new().into_iter(),
        load,
        resume,
        failed: false,
    });
    Ok(Box::new(Merge {
        a: olap.peekable(),
        b: lsm.peekable(),
    }))
}

/// An instrument's ticks in `range`, after `resume` if given, in (time, sequence) order.
pub fn tick_stream<'a>(
    engine: &'a Engine,
    instrument: &str,
    range: TimeRange,
    resume: Option<Vec<u8>>,
) -> Result<Rows<'a, Tick>> {
    let lsm: Rows<'a, Tick> = Box::new(
        scan_keys(
            engine,
            keys::instrument_ticks_at(instrument, range.from),
            keys::instrument_ticks_at(instrument, range.to),
            resume.clone(),
        )
        .map(|row| {
            let (k, v) = row?;
            Ok((k.to_vec(), decode_at::<Tick>(&k, &v)?))
        }),
    );
    let load: Loader<'a, Tick> = Box::new(move |entry| {
        let entry = entry.clone();
        let groups = olap::partition_tick_groups(engine, &entry, range)?;
        Ok(Box::new(groups.map(move |g| {
            let rows = g.map_err(|e| olap::group_error(engine, &entry, e))?;
            Ok(rows
                .into_iter()
                .map(|t| (keys::tick(&t.instrument_id, t.datetime, t.sequence), t))
                .collect())
        })) as Groups<'a, Tick>)
    });
    with_partitions(engine, Stream::Ticks, instrument, range, resume, lsm, load)
}

/// An instrument's trades in `range`, after `resume` if given, in time order.
pub fn trade_stream<'a>(
    engine: &'a Engine,
    instrument: &str,
    range: TimeRange,
    resume: Option<Vec<u8>>,
) -> Result<Rows<'a, TradeExecuted>> {
    let lsm: Rows<'a, TradeExecuted> = Box::new(
        scan_keys(
            engine,
            keys::instrument_trades_at(instrument, range.from),
            keys::instrument_trades_at(instrument, range.to),
            resume.clone(),
        )
        .map(|row| {
            let (k, v) = row?;
            Ok((k.to_vec(), decode_at::<TradeExecuted>(&k, &v)?))
        }),
    );
    let load: Loader<'a, TradeExecuted> = Box::new(move |entry| {
        let entry = entry.clone();
        let groups = olap::partition_trade_groups(engine, &entry, range)?;
        Ok(Box::new(groups.map(move |g| {
            let rows = g.map_err(|e| olap::group_error(engine, &entry, e))?;
            Ok(rows
                .into_iter()
                .map(|t| {
                    let key = keys::trade_by_instrument(
                        &t.instrument_id,
                        t.trade_date_time,
                        &t.user_id,
                        &t.trade_id,
                    );
                    (key, t)
                })
                .collect())
        })) as Groups<'a, TradeExecuted>)
    });
    with_partitions(engine, Stream::Trades, instrument, range, resume, lsm, load)
}
