//! Replaying ticks and trades from Parquet: where a stream of only those kinds reads events
//! that journal retention has dropped but converted partitions still hold at their positions
//! (see [`crate::olap::origin`] for when that history is complete).
//!
//! A read takes the first set of parts, among those the filter can match, whose log index
//! ranges overlap (usually one trading day's parts), so every event up to the end of that set
//! is in it. Of those parts it decodes only the row groups whose log index statistics fall in
//! a window (row groups cover at most half an hour of exchange time and positions follow time,
//! so a window is a slice of the day, each group decoded for one window only), and holds that
//! window's matching events in memory, sorted by position.

use super::journal::{self, JournalRead};
use super::{CommittedBatch, CommittedEvent, EventFilter, EventKind, Position};
use crate::apply::Outcome;
use crate::error::Result;
use crate::keys::Stream;
use crate::olap::{self, catalog, CatalogEntry, EventPart, IndexSpan};
use crate::record::Record;
use qastore_lsm::Engine;

/// Rows a time start's search through the files decodes at a time.
const TIME_START_WINDOW_ROWS: u64 = 1 << 18;

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
    let mut open = OpenParts::new();
    let mut any_before = false;
    let mut archived_at = None;
    'read: while after.successor().index < below {
        let read = read_after(
            engine,
            after,
            below,
            &all,
            TIME_START_WINDOW_ROWS,
            &mut open,
        )?;
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

/// The set of Parquet parts a stream's reads go through, opened (and checked against the
/// catalog) once for all the windows read from it rather than once per read. One belongs to
/// one stream: one filter, one engine.
#[derive(Default)]
pub struct OpenParts {
    set: Option<PartSet>,
}

impl OpenParts {
    /// None open yet.
    pub fn new() -> OpenParts {
        OpenParts::default()
    }
}

/// One set of overlapping parts, opened.
struct PartSet {
    /// The journal's floor it was chosen below.
    below: u64,
    /// The last log index it holds every matching event of.
    through: u64,
    parts: Vec<EventPart>,
    /// The row groups of its parts (by part number) in order of their first log index.
    spans: Vec<(usize, IndexSpan)>,
}

impl PartSet {
    fn open(engine: &Engine, next: u64, below: u64, filter: &EventFilter) -> Result<PartSet> {
        let (group, end) = overlapping_parts(engine, next, below, filter)?;
        let last_index = below.saturating_sub(1);
        let through = end.map_or(last_index, |e| e.min(last_index));
        let parts = group
            .iter()
            .map(|entry| EventPart::open(engine, entry))
            .collect::<Result<Vec<_>>>()?;
        let mut spans = Vec::new();
        for (k, part) in parts.iter().enumerate() {
            for span in part.spans(engine)? {
                if span.last >= next && span.first <= through {
                    spans.push((k, span));
                }
            }
        }
        spans.sort_by_key(|(_, span)| span.first);
        Ok(PartSet {
            below,
            through,
            parts,
            spans,
        })
    }
}

/// Reads the events after `after` and below log index `below` that match `filter` from the
/// live Parquet parts: those of the first set of overlapping parts (kept open in `open` for
/// the next reads), and of those only the row groups of a window of log indexes: groups that
/// overlap one another (a half hour of every part, as positions follow time), taken whole
/// until they hold at least `window_rows` rows. `covered_through` is the end of that window
/// (right before `below` when no part is left).
pub fn read_after(
    engine: &Engine,
    after: Position,
    below: u64,
    filter: &EventFilter,
    window_rows: u64,
    open: &mut OpenParts,
) -> Result<JournalRead> {
    let next = after.successor().index;
    let set = match open.set.take() {
        Some(set) if set.below == below && next <= set.through => set,
        _ => PartSet::open(engine, next, below, filter)?,
    };
    let spans = || set.spans.iter().filter(|(_, span)| span.last >= next);
    let through = window_end(spans().map(|(_, s)| s), set.through, window_rows);
    let mut events: Vec<(Position, i64, Record)> = Vec::new();
    let mut scanned = 0;
    for (k, part) in set.parts.iter().enumerate() {
        let groups: Vec<usize> = spans()
            .filter(|(p, span)| *p == k && span.first <= through)
            .map(|(_, span)| span.group)
            .collect();
        if groups.is_empty() {
            continue;
        }
        part.for_each_event(engine, &groups, |origin, record| {
            scanned += 1;
            let Some(p) = origin.position() else {
                return;
            };
            if p > after && p.index <= through && filter.matches(&record) {
                events.push((p, origin.commit_ns, record));
            }
        })?;
    }
    open.set = Some(set);
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

/// The first set of live parts the filter can match whose log index ranges overlap, among
/// those holding indexes from `next` and below `below`, and the end of that set.
fn overlapping_parts(
    engine: &Engine,
    next: u64,
    below: u64,
    filter: &EventFilter,
) -> Result<(Vec<CatalogEntry>, Option<u64>)> {
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
    Ok((group, end))
}

/// The last log index of a read's window, given the row groups that reach its first index in
/// order of their first index: it takes them with every group that starts within the span of
/// those taken (so no group is decoded for two windows) until they hold at least `rows` rows;
/// or `through`.
fn window_end<'a>(spans: impl Iterator<Item = &'a IndexSpan>, through: u64, rows: u64) -> u64 {
    let mut taken = 0;
    let mut end: Option<u64> = None;
    for span in spans {
        if let Some(e) = end {
            if span.first > e && taken >= rows {
                return e.min(through);
            }
        }
        end = Some(end.map_or(span.last, |e| e.max(span.last)));
        taken += span.rows;
    }
    through
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u64, last: u64, rows: u64) -> IndexSpan {
        IndexSpan {
            group: 0,
            first,
            last,
            rows,
        }
    }

    #[test]
    fn a_window_ends_where_no_group_it_took_reaches_further() {
        let spans = [span(1, 40, 100), span(30, 90, 100), span(91, 200, 100)];
        // The second group starts inside the first: both are taken, whatever the rows asked.
        assert_eq!(window_end(spans.iter(), 500, 150), 90);
        assert_eq!(window_end(spans.iter(), 500, 50), 90);
        assert_eq!(window_end(spans.iter(), 60, 150), 60);
        assert_eq!(window_end(spans.iter(), 500, 250), 500);
    }

    #[test]
    fn a_window_leaves_out_the_groups_that_start_after_it() {
        let spans = [span(1, 10, 100), span(20, 30, 100), span(31, 40, 100)];
        assert_eq!(window_end(spans.iter(), 500, 1), 10);
        assert_eq!(window_end(spans[1..].iter(), 500, 1), 30);
        assert_eq!(window_end(spans[1..].iter(), 500, 150), 500);
    }
}
