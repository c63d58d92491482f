//! Reading committed events back from the event journal: where a stream that starts in the
//! past, or that fell behind the live feed, reads from.

use std::ops::Bound;

use bytes::Bytes;

use super::{CommittedBatch, CommittedEvent, EventFilter, OrderPlaces, Position};
use crate::apply::JournalEntry;
use crate::error::{Error, Result};
use crate::keys;
use crate::record::decode;
use qastore_lsm::Engine;

/// What one read of the journal found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalRead {
    /// The events after the start that match the filter, grouped by batch, in order.
    pub batches: Vec<CommittedBatch>,
    /// The last position this read covered: every matching event up to it is in `batches`.
    /// `None` when the journal holds nothing after the start.
    pub covered_through: Option<Position>,
    /// Events looked at (matching or not).
    pub scanned: usize,
}

/// Reads the events after `after` (exclusive) that match `filter`, looking at no more than
/// `max_scan` events. Commit times are read once per batch. An order update is matched on its
/// order's place (see [`OrderPlaces`]), read from the inserts the read passes or from the
/// engine, only when the filter needs it.
pub fn read_after(
    engine: &Engine,
    after: Position,
    filter: &EventFilter,
    max_scan: usize,
) -> Result<JournalRead> {
    let start = after.successor();
    let lower = keys::journal(start.index, start.ordinal);
    let upper = [keys::JOURNAL + 1];
    let mut read = JournalRead::default();
    let mut places = OrderPlaces::new();
    for row in engine.scan(Bound::Included(&lower), Bound::Excluded(&upper[..])) {
        if read.scanned >= max_scan {
            break;
        }
        let (key, value) = row?;
        let Some((index, ordinal)) = keys::parse_journal(&key) else {
            return Err(bad_key(&key));
        };
        read.scanned += 1;
        read.covered_through = Some(Position::new(index, ordinal));
        let entry: JournalEntry = decode(&value).map_err(|e| bad_value(&key, e))?;
        places.learn(&entry.record, entry.outcome);
        let place = places.resolve(engine, filter, &entry.record, entry.outcome)?;
        if !filter.matches_with(&entry.record, place) {
            continue;
        }
        let event = CommittedEvent {
            ordinal,
            record: entry.record,
            outcome: entry.outcome,
        };
        match read.batches.last_mut() {
            Some(b) if b.index == index => b.events.push(event),
            _ => read.batches.push(CommittedBatch {
                index,
                commit_ns: commit_time(engine, index)?.unwrap_or(0),
                events: vec![event],
            }),
        }
    }
    Ok(read)
}

/// The oldest position the journal still holds, if it holds any.
pub fn earliest(engine: &Engine) -> Result<Option<Position>> {
    let lower = [keys::JOURNAL];
    let upper = [keys::JOURNAL + 1];
    match engine
        .scan(Bound::Included(&lower[..]), Bound::Excluded(&upper[..]))
        .next()
    {
        Some(row) => {
            let (key, _) = row?;
            let (index, ordinal) = keys::parse_journal(&key).ok_or_else(|| bad_key(&key))?;
            Ok(Some(Position::new(index, ordinal)))
        }
        None => Ok(None),
    }
}

/// The lowest log index whose events the journal may still hold: retention has dropped every
/// event below it (0 when nothing was ever dropped).
pub fn floor(engine: &Engine) -> Result<u64> {
    Ok(stored_u64(engine, &keys::journal_floor(), "journal floor")?.unwrap_or(0))
}

/// The `u64` (big-endian) stored at `key`, if any; `what` names it in an error.
pub(crate) fn stored_u64(engine: &Engine, key: &[u8], what: &str) -> Result<Option<u64>> {
    let Some(v) = engine.get(key)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = v
        .as_ref()
        .try_into()
        .map_err(|_| bad_value(key, format!("a {what} of {} bytes, not 8", v.len())))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Whether a stream that has seen everything up to `cursor` can go on from the journal: no
/// event after it was dropped by retention. When it cannot, the error's earliest position is
/// where the journal's history now begins.
pub fn check_retained(
    engine: &Engine,
    cursor: Position,
) -> Result<std::result::Result<(), Position>> {
    let floor = floor(engine)?;
    if floor == 0 || cursor.successor().index >= floor {
        return Ok(Ok(()));
    }
    let earliest = earliest(engine)?
        .filter(|e| e.index >= floor)
        .unwrap_or(Position::new(floor, 0));
    Ok(Err(earliest))
}

/// When the leader proposed the write batch at `index`, if that was recorded.
pub fn commit_time(engine: &Engine, index: u64) -> Result<Option<i64>> {
    match engine.get(&keys::commit_time(index))? {
        Some(v) => Ok(Some(decode_time(&keys::commit_time(index), &v)?)),
        None => Ok(None),
    }
}

/// The log index of the first write batch committed at or after `time_ns`, if the journal
/// holds one with a recorded commit time.
pub fn first_at_or_after(engine: &Engine, time_ns: i64) -> Result<Option<u64>> {
    let lower = [keys::COMMIT_TIME];
    let upper = [keys::COMMIT_TIME + 1];
    for row in engine.scan(Bound::Included(&lower[..]), Bound::Excluded(&upper[..])) {
        let (key, value) = row?;
        let index = keys::parse_commit_time(&key).ok_or_else(|| bad_key(&key))?;
        if decode_time(&key, &value)? >= time_ns {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// The stored form of a commit time.
pub fn encode_time(time_ns: i64) -> Bytes {
    Bytes::copy_from_slice(&time_ns.to_be_bytes())
}

fn decode_time(key: &[u8], value: &[u8]) -> Result<i64> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        bad_value(
            key,
            format!("a commit time of {} bytes, not 8", value.len()),
        )
    })?;
    Ok(i64::from_be_bytes(bytes))
}

fn bad_key(key: &[u8]) -> Error {
    bad_value(key, "not a key of its keyspace")
}

fn bad_value(key: &[u8], e: impl std::fmt::Display) -> Error {
    Error::bad_value(String::from_utf8_lossy(key).into_owned(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::record::{samples, OrderInsert, OrderUpdate, Record};
    use qastore_lsm::vfs::OsVfs;
    use qastore_lsm::EngineConfig;

    fn order(id: &str, instrument: &str) -> OrderInsert {
        let Some(Record::OrderInsert(mut o)) = samples::records().into_iter().next() else {
            panic!("the samples start with an order insert");
        };
        o.order_id = id.into();
        o.instrument_id = instrument.into();
        o
    }

    fn update(o: &OrderInsert) -> Record {
        Record::OrderUpdate(OrderUpdate {
            user_id: o.user_id.clone(),
            order_id: o.order_id.clone(),
            ..OrderUpdate::default()
        })
    }

    #[test]
    fn a_read_filtered_on_an_instrument_keeps_its_orders_updates_but_not_parked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
        let (mine, other, late) = (
            order("a", "IF2412"),
            order("b", "IF2501"),
            order("c", "IF2412"),
        );
        let inserts = [mine.clone(), other.clone()].map(Record::OrderInsert);
        apply(&engine, &inserts, 1).unwrap();
        apply(&engine, &[update(&mine), update(&other), update(&late)], 2).unwrap();
        apply(&engine, &[Record::OrderInsert(late.clone())], 3).unwrap();
        let f =
            EventFilter::new(vec![], vec!["CFFEX.IF2412".into()], vec![], vec![], None).unwrap();
        // From the start: the insert is read first; from after it: placed from the engine.
        for after in [Position::end_of(0), Position::end_of(1)] {
            let read = read_after(&engine, after, &f, 100).unwrap();
            let got: Vec<Position> = read
                .batches
                .iter()
                .flat_map(|b| b.events.iter().map(|e| b.position_of(e)))
                .collect();
            let mut want = vec![Position::new(2, 0), Position::new(3, 0)];
            if after == Position::end_of(0) {
                want.insert(0, Position::new(1, 0));
            }
            assert_eq!(got, want, "after {after}");
        }
    }
}
