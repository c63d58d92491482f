//! Replaying ticks and trades from Parquet: where a stream of only those kinds reads events
//! that journal retention has dropped but converted partitions still hold at their positions
//! (see [`crate::olap::origin`] for when that history is complete).
//!
//! A read takes the first set of parts, among those the filter can match, whose log index
//! ranges overlap (usually one trading day's parts), so every event up to the end of that set
//! is in it; it holds that set's matching events in memory, sorted by position.

use super::journal::{self, JournalRead};
use super::{CommittedBatch, CommittedEvent, EventFilter, EventKind, Position};
use crate::apply::Outcome;
use crate::error::Result;
use crate::keys::Stream;
use crate::olap::{self, catalog, CatalogEntry};
use crate::record::Record;
use qastore_lsm::Engine;

/// Where the events after a stream's cursor are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The journal holds them.
    Journal,
    /// Parquet holds those below this log index (the journal's floor); the journal the rest.
    Archive {
        /// The journal's floor.
        below: u64,
    },
}

/// Where the events after `cursor` that match `filter` are still held; `Err` with the earliest
/// position a stream can still start at when some have been dropped.
pub fn locate(
    engine: &Engine,
    cursor: Position,
    filter: &EventFilter,
) -> Result<std::result::Result<Source, Position>> {
    let earliest = match journal::check_retained(engine, cursor)? {
        Ok(()) => return Ok(Ok(Source::Journal)),
        Err(earliest) => earliest,
    };
    if !replayable(filter) {
        return Ok(Err(earliest));
    }
    let below = journal::floor(engine)?;
    let floor = olap::replay_floor(engine)?;
    if floor >= below {
        return Ok(Err(earliest));
    }
    if cursor.successor().index >= floor {
        Ok(Ok(Source::Archive { below }))
    } else {
        Ok(Err(Position::new(floor, 0)))
    }
}

/// The oldest position a stream with `filter` can start after: right before the replay floor
/// for a stream of ticks and trades whose history Parquet holds, else right before the
/// journal's floor.
pub fn oldest_start(engine: &Engine, filter: &EventFilter) -> Result<Position> {
    let journal_floor = journal::floor(engine)?;
    let floor = if replayable(filter) {
        olap::replay_floor(engine)?.min(journal_floor)
    } else {
        journal_floor
    };
    Ok(Position::end_of(floor.saturating_sub(1)))
}

/// Where a stream with `filter` that starts at `time_ns` begins: right before the first batch
/// committed at or after that time (after `applied`, this node's last applied batch, when none
/// is yet). Batches the journal dropped may have been committed after `time_ns`; for a stream
/// of ticks and trades their commit times are read from Parquet. `Err` with the earliest
/// position a stream can still start at when what is left cannot tell.
pub fn time_start(
    engine: &Engine,
    time_ns: i64,
    filter: &EventFilter,
    applied: u64,
) -> Result<std::result::Result<Position, Position>> {
    let below = journal::floor(engine)?;
    let found = journal::first_at_or_after(engine, time_ns)?;
    let Some(index) = found else {
        return Ok(Ok(Position::end_of(applied)));
    };
    // Unless the first batch the journal still holds is already at or after the time, the
    // batches dropped before it were all committed earlier.
    if below == 0 || journal::first_at_or_after(engine, i64::MIN)? != found {
        return Ok(Ok(Position::end_of(index.saturating_sub(1))));
    }
    let journal_refusal = journal::earliest(engine)?.unwrap_or(Position::new(below, 0));
    if !replayable(filter) {
        return Ok(Err(journal_refusal));
    }
    let floor = olap::replay_floor(engine)?;
    if floor >= below {
        return Ok(Err(journal_refusal));
    }
    // Every tick and trade, not only those of the filter: the first archived batch of the
    // filter's own instruments may come long after the first of all.
    let all = EventFilter::of_kinds(&[EventKind::Ticks, EventKind::Trades]);
    let mut after = Position::end_of(floor.saturating_sub(1));
    let mut any_before = false;
    let mut archived_at = None;
    'read: while after.successor().index < below {
        let read = read_after(engine, after, below, &all)?;
        for batch in read.batches.iter().filter(|b| b.commit_ns != 0) {
            if batch.commit_ns >= time_ns {
                archived_at = Some(batch.index);
                break 'read;
            }
            any_before = true;
        }
        after = read
            .covered_through
            .unwrap_or(Position::end_of(below.saturating_sub(1)));
    }
    // Batches below the replay floor are gone from both: unless the files hold one committed
    // before the time, any of those may have been committed after it.
    if !any_before && floor > 1 {
        return Ok(Err(Position::new(floor, 0)));
    }
    // With every archived event committed before the time, the journal's batch is the first.
    let first = archived_at.unwrap_or(index);
    Ok(Ok(Position::end_of(first.saturating_sub(1))))
}

/// Whether the filter selects only ticks and trades, the kinds Parquet holds.
pub fn replayable(filter: &EventFilter) -> bool {
    !filter.kinds().is_empty()
        && filter
            .kinds()
            .iter()
            .all(|k| matches!(k, EventKind::Ticks | EventKind::Trades))
}

/// Reads the events after `after` and below log index `below` that match `filter` from the
/// live Parquet parts: those of the first set of overlapping parts, and `covered_through` the
/// end of that set (or right before `below` when no part is left).
pub fn read_after(
    engine: &Engine,
    after: Position,
    below: u64,
    filter: &EventFilter,
) -> Result<JournalRead> {
    let next = after.successor().index;
    let mut parts = Vec::new();
    for (kind, stream) in [
        (EventKind::Ticks, Stream::Ticks),
        (EventKind::Trades, Stream::Trades),
    ] {
        if !filter.wants_kind(kind) {
            continue;
        }
        for entry in catalog::all(engine, stream)? {
            if !entry.is_live() || !filter.may_match_instrument(&entry.instrument) {
                continue;
            }
            if let Some((first, last)) = olap::part_span(engine, &entry)? {
                if last >= next && first < below {
                    parts.push((first, last, entry));
                }
            }
        }
    }
    parts.sort_by_key(|(first, _, _)| *first);
    let mut end: Option<u64> = None;
    let mut group: Vec<CatalogEntry> = Vec::new();
    for (first, last, entry) in parts {
        match end {
            Some(e) if first > e => break,
            _ => end = Some(end.map_or(last, |e| e.max(last))),
        }
        group.push(entry);
    }
    let last_index = below.saturating_sub(1);
    let through = end.map_or(last_index, |e| e.min(last_index));
    let mut events: Vec<(Position, i64, Record)> = Vec::new();
    let mut scanned = 0;
    for entry in &group {
        let rows: Vec<(olap::RowOrigin, Record)> = match entry.stream() {
            Stream::Ticks => olap::partition_tick_events(engine, entry)?
                .into_iter()
                .map(|(o, t)| (o, Record::Tick(t)))
                .collect(),
            Stream::Trades => olap::partition_trade_events(engine, entry)?
                .into_iter()
                .map(|(o, t)| (o, Record::TradeExecuted(t)))
                .collect(),
        };
        scanned += rows.len();
        for (origin, record) in rows {
            let Some(p) = origin.position() else {
                continue;
            };
            if p > after && p.index <= through && filter.matches(&record) {
                events.push((p, origin.commit_ns, record));
            }
        }
    }
    events.sort_by_key(|(p, _, _)| *p);
    let mut read = JournalRead {
        batches: Vec::new(),
        covered_through: Some(Position::end_of(through)),
        scanned,
    };
    for (p, commit_ns, record) in events {
        let outcome = match record {
            Record::Tick(_) => Outcome::TickRecorded,
            _ => Outcome::TradeRecorded,
        };
        let event = CommittedEvent {
            ordinal: p.ordinal,
            record,
            outcome,
        };
        match read.batches.last_mut() {
            Some(b) if b.index == p.index => b.events.push(event),
            _ => read.batches.push(CommittedBatch {
                index: p.index,
                commit_ns,
                events: vec![event],
            }),
        }
    }
    Ok(read)
}
