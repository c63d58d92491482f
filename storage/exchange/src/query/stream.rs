//! Time-ordered streams of one instrument's ticks or trades over a range, each item with its
//! key (which page tokens resume from).
//!
//! Days converted to Parquet are read from their files (oldest first, loading one day's part
//! files at a time); everything else from the LSM; the two are merged by key. After a conversion
//! the LSM no longer holds the converted rows, and rows that arrive later for a converted day
//! (late rows) sit in the LSM until the next conversion moves them to a new part file. Should a
//! key be written again after its day was converted, the newest copy (a later part, or the LSM)
//! is the one read, so no row is counted twice.
//!
//! The merge is generic over the key so that readers needing only a few fields (bars) can key
//! rows by something cheaper than the stored key, as long as it sorts the same way.

use super::decode_at;
use super::range::{scan_keys, TimeRange};
use crate::error::Result;
use crate::keys::{self, Stream};
use crate::olap::{self, CatalogEntry};
use crate::record::{Tick, TradeExecuted};
use qastore_lsm::Engine;

/// A stream of (key, item).
pub type Rows<'a, T> = Keyed<'a, Vec<u8>, T>;

/// A stream of (sort key, item), in key order.
pub type Keyed<'a, K, T> = Box<dyn Iterator<Item = Result<(K, T)>> + 'a>;

/// Row groups of one partition, each as (key, item) rows.
pub(crate) type Groups<'a, K, T> = Box<dyn Iterator<Item = Result<Vec<(K, T)>>> + 'a>;

/// Opens one partition as row groups.
pub(crate) type Loader<'a, K, T> = Box<dyn FnMut(&CatalogEntry) -> Result<Groups<'a, K, T>> + 'a>;

/// Rows of one part file, one row group in memory at a time.
struct PartRows<'a, K, T> {
    groups: Groups<'a, K, T>,
    current: std::vec::IntoIter<(K, T)>,
    failed: bool,
}

impl<K, T> Iterator for PartRows<'_, K, T> {
    type Item = Result<(K, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(row) = self.current.next() {
                return Some(Ok(row));
            }
            match self.groups.next()? {
                Ok(rows) => self.current = rows.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Rows of converted partitions, a trading day at a time. The part files of one day may
/// interleave in time (later parts hold late rows), so they are merged; days do not overlap,
/// so they follow one another.
struct Partitions<'a, K, T> {
    days: std::vec::IntoIter<Vec<CatalogEntry>>,
    current: Option<Keyed<'a, K, T>>,
    load: Loader<'a, K, T>,
    resume: Option<K>,
    failed: bool,
}

impl<'a, K: Ord + 'a, T: 'a> Partitions<'a, K, T> {
    /// Opens every part of a day and merges them, a later part winning a tie.
    fn open_day(&mut self, parts: Vec<CatalogEntry>) -> Result<Keyed<'a, K, T>> {
        let mut merged: Option<Keyed<'a, K, T>> = None;
        for entry in &parts {
            let rows: Keyed<'a, K, T> = Box::new(PartRows {
                groups: (self.load)(entry)?,
                current: Vec::new().into_iter(),
                failed: false,
            });
            merged = Some(match merged {
                None => rows,
                Some(older) => Box::new(Merge {
                    a: older.peekable(),
                    b: rows.peekable(),
                }),
            });
        }
        Ok(merged.unwrap_or_else(|| Box::new(std::iter::empty())))
    }
}

impl<'a, K: Ord + 'a, T: 'a> Iterator for Partitions<'a, K, T> {
    type Item = Result<(K, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(rows) = self.current.as_mut() {
                match rows.next() {
                    Some(Ok(row)) => {
                        if self.resume.as_ref().is_some_and(|r| row.0 <= *r) {
                            continue;
                        }
                        return Some(Ok(row));
                    }
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            let parts = self.days.next()?;
            match self.open_day(parts) {
                Ok(rows) => self.current = Some(rows),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Merges two key-ordered streams. On equal keys the second (newer) one's row is kept and the
/// first's dropped: a row written again after its day was converted replaces the converted one,
/// as a second write of a key does in the LSM.
struct Merge<'a, K, T> {
    a: std::iter::Peekable<Keyed<'a, K, T>>,
    b: std::iter::Peekable<Keyed<'a, K, T>>,
}

impl<K: Ord, T> Iterator for Merge<'_, K, T> {
    type Item = Result<(K, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Err(_)), _) => true,
            (_, Some(Err(_))) => false,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => {
                    self.a.next();
                    false
                }
            },
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

/// Merges `lsm` with the live partitions of `instrument` that overlap `range`.
pub(crate) fn with_partitions<'a, K: Ord + 'a, T: 'a>(
    engine: &'a Engine,
    stream: Stream,
    instrument: &str,
    range: TimeRange,
    resume: Option<K>,
    lsm: Keyed<'a, K, T>,
    load: Loader<'a, K, T>,
) -> Result<Keyed<'a, K, T>> {
    // The catalog lists an instrument's parts by day, then part number.
    let mut days: Vec<Vec<CatalogEntry>> = Vec::new();
    for e in olap::catalog::for_instrument(engine, stream, instrument)? {
        if !(e.is_live() && e.max_time >= range.from && e.min_time < range.to) {
            continue;
        }
        match days.last_mut() {
            Some(day) if day[0].trading_day == e.trading_day => day.push(e),
            _ => days.push(vec![e]),
        }
    }
    if days.is_empty() {
        return Ok(lsm);
    }
    let olap: Keyed<'a, K, T> = Box::new(Partitions {
        days: days.into_iter(),
        current: None,
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
    let load: Loader<'a, Vec<u8>, Tick> = Box::new(move |entry| {
        let entry = entry.clone();
        let groups = olap::partition_tick_groups(engine, &entry, range)?;
        Ok(Box::new(groups.map(move |g| {
            let rows = g.map_err(|e| olap::group_error(engine, &entry, e))?;
            Ok(rows
                .into_iter()
                .map(|t| (keys::tick(&t.instrument_id, t.datetime, t.sequence), t))
                .collect())
        })) as Groups<'a, Vec<u8>, Tick>)
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
    let load: Loader<'a, Vec<u8>, TradeExecuted> = Box::new(move |entry| {
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
        })) as Groups<'a, Vec<u8>, TradeExecuted>)
    });
    with_partitions(engine, Stream::Trades, instrument, range, resume, lsm, load)
}
