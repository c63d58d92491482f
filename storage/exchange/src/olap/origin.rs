//! Where converted rows came from, and how far back ticks and trades can be replayed.
//!
//! A conversion looks each row up in the journal (the last event that wrote the row's key) and
//! stores that event's position and commit time beside the row ([`RowOrigin`]), with each
//! part's range of log indexes. Once journal retention drops those events, a subscription to
//! ticks or trades can still be served from the files, in position order, as long as every
//! dropped tick and trade event is in a live part at its own position. The *replay floor*
//! tracks that: the lowest log index from which the files and the journal together hold every
//! tick and trade event. It only rises:
//! - journal retention drops an event whose row was never converted (still in the LSM), or
//!   one that a later event of the same key replaced before conversion, or a resent copy the
//!   conversion left out (both noted as *superseded* when the conversion runs): the floor
//!   moves above it;
//! - day retention removes a part: the floor moves above the part's last log index.
//!
//! ```text
//! s olapr\0 <stream> <day u32 BE> <instrument>\0 <part u32 BE>  -> first, last log index (u64 BE each)
//! s olaps\0 <index u64 BE> <ordinal u32 BE>                     -> (empty) a superseded event
//! s replay-floor                                                -> u64 BE
//! ```

use std::collections::HashMap;
use std::ops::Bound;

use bytes::Bytes;

use super::catalog::CatalogEntry;
use super::parquet::RowOrigin;
use crate::apply::{ArchivedOutcome, JournalEntry};
use crate::error::{Error, Result};
use crate::feed::{journal, Position};
use crate::keys::{self, KeyBuf, Stream, SYSTEM};
use crate::record::{inspect, ArchivedRecord};
use qastore_lsm::{Engine, WriteBatch};

/// The key of a part's range of log indexes.
fn span_key(entry: &CatalogEntry) -> Vec<u8> {
    KeyBuf::new(SYSTEM)
        .id("olapr")
        .byte(entry.stream)
        .u32(entry.trading_day)
        .id(&entry.instrument)
        .u32(entry.part())
        .build()
}

/// The key marking an event whose row no part holds at its position.
fn superseded_key(p: Position) -> Vec<u8> {
    KeyBuf::new(SYSTEM)
        .id("olaps")
        .u64(p.index)
        .u32(p.ordinal)
        .build()
}

fn replay_floor_key() -> Vec<u8> {
    KeyBuf::new(SYSTEM).last_id("replay-floor").build()
}

/// The first and last log index of the rows of `entry` with a known origin; `None` when it has
/// none (or was written before parts recorded their origins).
pub fn part_span(engine: &Engine, entry: &CatalogEntry) -> Result<Option<(u64, u64)>> {
    let key = span_key(entry);
    let Some(v) = engine.get(&key)? else {
        return Ok(None);
    };
    let bytes: [u8; 16] = v.as_ref().try_into().map_err(|_| {
        bad_value(
            &key,
            format!("a part's index range of {} bytes, not 16", v.len()),
        )
    })?;
    let (first, last) = bytes.split_at(8);
    Ok(Some((be_u64(first), be_u64(last))))
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Adds `entry`'s range of log indexes to `batch`, if its rows have any known origin.
pub(super) fn put_span(batch: &mut WriteBatch, entry: &CatalogEntry, origins: &[RowOrigin]) {
    let known = origins
        .iter()
        .filter(|o| o.log_index > 0)
        .map(|o| o.log_index);
    let (Some(first), Some(last)) = (known.clone().min(), known.max()) else {
        return;
    };
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&first.to_be_bytes());
    v.extend_from_slice(&last.to_be_bytes());
    batch.put(span_key(entry), Bytes::from(v));
}

/// Notes in `batch` that no part will hold the event at `p` at its own position.
pub(super) fn put_superseded(batch: &mut WriteBatch, p: Position) {
    batch.put(superseded_key(p), Bytes::new());
}

/// The lowest log index from which Parquet parts and the journal together hold every tick and
/// trade event. Where it is below the journal's floor, ticks and trades below the floor are
/// replayed from Parquet.
pub fn replay_floor(engine: &Engine) -> Result<u64> {
    match stored_replay_floor(engine)? {
        Some(floor) => Ok(floor),
        // Never set: nothing was dropped since origins were recorded, or the journal was
        // trimmed before that and nothing below its floor can be trusted.
        None => journal::floor(engine),
    }
}

fn stored_replay_floor(engine: &Engine) -> Result<Option<u64>> {
    journal::stored_u64(engine, &replay_floor_key(), "replay floor")
}

/// Sets the replay floor in `batch` to `floor` when that raises it (or it was never set).
pub(super) fn raise_replay_floor(
    engine: &Engine,
    batch: &mut WriteBatch,
    floor: u64,
) -> Result<()> {
    if stored_replay_floor(engine)?.is_none_or(|stored| floor > stored) {
        batch.put(
            replay_floor_key(),
            Bytes::copy_from_slice(&floor.to_be_bytes()),
        );
    }
    Ok(())
}

/// The origins of one stream's trading day, found in the journal: each row key's events, in
/// log order.
#[derive(Default)]
pub(super) struct DayOrigins {
    events: HashMap<Vec<u8>, Vec<RowOrigin>>,
}

impl DayOrigins {
    /// Reads every tick (or trade) event of `day` the journal holds after log index `after`.
    pub(super) fn read(
        engine: &Engine,
        stream: Stream,
        day: u32,
        after: u64,
    ) -> Result<DayOrigins> {
        let lower = keys::journal_from(after.saturating_add(1));
        let upper = [keys::JOURNAL + 1];
        let mut events: HashMap<Vec<u8>, Vec<RowOrigin>> = HashMap::new();
        let mut commit = (0u64, 0i64);
        for row in engine.scan(Bound::Included(&lower[..]), Bound::Excluded(&upper[..])) {
            let (key, value) = row?;
            let wanted = |s: Stream, d: u32, recorded: bool| s == stream && d == day && recorded;
            let Some(RowEvent { row_key, position }) = row_event(&key, &value, wanted)? else {
                continue;
            };
            let (log_index, ordinal) = (position.index, position.ordinal);
            if commit.0 != log_index {
                let ns = journal::commit_time(engine, log_index)?.unwrap_or(0);
                commit = (log_index, ns);
            }
            events.entry(row_key).or_default().push(RowOrigin {
                log_index,
                ordinal,
                commit_ns: commit.1,
            });
        }
        Ok(DayOrigins { events })
    }

    /// The origin of the row at `key` as the LSM holds it now, in a conversion of a partition
    /// last converted at `since` (0: never): the last event that wrote it. Events of the key
    /// after `since` before that one, replaced before any part held them, are added to
    /// `superseded`.
    pub(super) fn take(
        &mut self,
        key: &[u8],
        since: u64,
        superseded: &mut Vec<Position>,
    ) -> RowOrigin {
        let Some(events) = self.events.remove(key) else {
            return RowOrigin::default();
        };
        let mut newer = events.into_iter().filter(|o| o.log_index > since);
        let last = newer.next_back();
        superseded.extend(newer.filter_map(|o| o.position()));
        last.unwrap_or_default()
    }
}

/// Looks at the journal events below `cutoff` that a retention is about to drop: deletes
/// their superseded marks in `batch` and returns the highest log index among those no live
/// part holds at their position (ticks and trades still in the LSM, or superseded).
pub(super) fn uncovered_below(
    engine: &Engine,
    cutoff: u64,
    batch: &mut WriteBatch,
) -> Result<Option<u64>> {
    let lower = keys::journal_from(0);
    let upper = keys::journal_from(cutoff);
    let mut highest = None;
    for row in engine.scan(Bound::Included(&lower[..]), Bound::Excluded(&upper[..])) {
        let (key, value) = row?;
        let Some(RowEvent { row_key, position }) = row_event(&key, &value, |_, _, _| true)? else {
            continue;
        };
        let log_index = position.index;
        let mark = superseded_key(position);
        let superseded = engine.get(&mark)?.is_some();
        if superseded {
            batch.delete(mark);
        }
        if superseded || engine.get(&row_key)?.is_some() {
            highest = Some(log_index);
        }
    }
    Ok(highest)
}

/// A tick or trade event of the journal, as [`row_event`] finds it.
struct RowEvent {
    /// The key of the row the event wrote (or would have, had it been recorded).
    row_key: Vec<u8>,
    position: Position,
}

/// The tick or trade event stored under `key` in the journal if `wanted` (its stream, trading
/// day, and whether applying it recorded the row) says so; `None` for any other event. Most of
/// the journal is other events: each is looked at in place, and a row key is built only for
/// the events wanted.
fn row_event(
    key: &[u8],
    value: &[u8],
    wanted: impl Fn(Stream, u32, bool) -> bool,
) -> Result<Option<RowEvent>> {
    inspect::<JournalEntry, _>(value, |e| {
        let row_key = match &e.record {
            ArchivedRecord::Tick(t) => {
                let recorded = e.outcome == ArchivedOutcome::TickRecorded;
                if !wanted(Stream::Ticks, t.trading_day.to_native(), recorded) {
                    return None;
                }
                keys::tick(
                    &t.instrument_id,
                    t.datetime.to_native(),
                    t.sequence.to_native(),
                )
            }
            ArchivedRecord::TradeExecuted(t) => {
                let recorded = e.outcome == ArchivedOutcome::TradeRecorded;
                if !wanted(Stream::Trades, t.trading_day.to_native(), recorded) {
                    return None;
                }
                keys::trade_by_instrument(
                    &t.instrument_id,
                    t.trade_date_time.to_native(),
                    &t.user_id,
                    &t.trade_id,
                )
            }
            _ => return None,
        };
        Some(RowEvent {
            row_key,
            position: Position::new(e.log_index.to_native(), e.ordinal.to_native()),
        })
    })
    .map_err(|e| bad_value(key, e))
}

fn bad_value(key: &[u8], e: impl std::fmt::Display) -> Error {
    Error::bad_value(String::from_utf8_lossy(key).into_owned(), e.to_string())
}
