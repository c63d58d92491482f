//! The state a "snapshot then tail" stream starts with: accounts, positions, alive orders and
//! the latest book of each instrument, all read at one applied index.

use std::ops::Bound;

use super::EventFilter;
use crate::error::{Error, Result};
use crate::keys;
use crate::record::{
    decode, AccountUpdate, OrderBookSnapshot, OrderState, OrderStatus, PositionUpdate, Record,
};
use qastore_lsm::{Engine, ReadView};

/// The state matching a filter as of one applied log index.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSnapshot {
    /// Every record below reflects the log up to and including this index, nothing after.
    pub applied_index: u64,
    /// Accounts, positions, alive orders (as inserts with their current status and volume
    /// left) and the latest book per instrument, in that order.
    pub records: Vec<Record>,
}

/// Reads the state matching `filter` at the engine's last applied batch. Ticks and trades are
/// events, not state: a filter of only those kinds gets an empty state.
pub fn read_state(engine: &Engine, filter: &EventFilter) -> Result<StateSnapshot> {
    let view = engine.read_view();
    let mut records = Vec::new();
    let mut keep = |r: Record| {
        if filter.matches(&r) {
            records.push(r);
        }
    };
    for (_, v) in rows(&view, keys::ACCOUNT)? {
        keep(Record::AccountUpdate(
            decode::<AccountUpdate>(&v).map_err(bad)?,
        ));
    }
    for (_, v) in rows(&view, keys::POSITION)? {
        keep(Record::PositionUpdate(
            decode::<PositionUpdate>(&v).map_err(bad)?,
        ));
    }
    for (_, v) in rows(&view, keys::ORDER)? {
        let state = decode::<OrderState>(&v).map_err(bad)?;
        if state.order.status == OrderStatus::Alive {
            keep(Record::OrderInsert(state.order));
        }
    }
    for book in latest_books(&view)? {
        keep(Record::OrderBookSnapshot(book));
    }
    Ok(StateSnapshot {
        applied_index: view.applied_index(),
        records,
    })
}

fn rows(view: &ReadView, space: u8) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>> {
    view.scan_prefix(&[space])
        .map(|row| row.map_err(Error::from))
        .collect()
}

/// The first key of each instrument's book range is its latest book: read it, then jump past
/// the instrument's range.
fn latest_books(view: &ReadView) -> Result<Vec<OrderBookSnapshot>> {
    let mut out = Vec::new();
    let end = [keys::BOOK + 1];
    let mut lower = vec![keys::BOOK];
    loop {
        let first = view
            .scan(Bound::Included(&lower), Bound::Excluded(&end[..]))
            .next();
        let Some(row) = first else {
            break;
        };
        let (key, value) = row?;
        let book = decode::<OrderBookSnapshot>(&value).map_err(bad)?;
        // Past every key of this instrument: its id, its terminator, then anything.
        lower = keys::instrument_books(&book.instrument_id);
        let Some(last) = lower.last_mut() else {
            break;
        };
        *last += 1;
        if lower <= key.to_vec() {
            return Err(Error::bad_value(
                String::from_utf8_lossy(&key).into_owned(),
                "a book stored under another instrument's key",
            ));
        }
        out.push(book);
    }
    Ok(out)
}

fn bad(e: crate::record::DecodeError) -> Error {
    Error::bad_value("state snapshot", e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::feed::EventKind;
    use crate::record::samples;
    use qastore_lsm::vfs::OsVfs;
    use qastore_lsm::EngineConfig;

    fn kinds(s: &StateSnapshot) -> Vec<EventKind> {
        s.records.iter().map(EventKind::of).collect()
    }

    #[test]
    fn the_state_holds_accounts_positions_alive_orders_and_the_latest_book_per_instrument() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
        let records = samples::records();
        apply(&engine, &records, 1).unwrap();
        let mut later_book = records
            .iter()
            .find_map(|r| match r {
                Record::OrderBookSnapshot(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        later_book.datetime += 1_000;
        let mut other = later_book.clone();
        other.instrument_id = "IF2501".into();
        apply(
            &engine,
            &[
                Record::OrderBookSnapshot(later_book.clone()),
                Record::OrderBookSnapshot(other.clone()),
            ],
            2,
        )
        .unwrap();
        let all = read_state(&engine, &EventFilter::everything()).unwrap();
        assert_eq!(all.applied_index, 2);
        let books: Vec<&OrderBookSnapshot> = all
            .records
            .iter()
            .filter_map(|r| match r {
                Record::OrderBookSnapshot(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(
            books,
            vec![&later_book, &other],
            "one, the latest, per instrument"
        );
        let k = kinds(&all);
        assert!(k.contains(&EventKind::Accounts) && k.contains(&EventKind::Positions));
        assert!(!k.contains(&EventKind::Ticks) && !k.contains(&EventKind::Trades));
        let only_books =
            EventFilter::new(vec![EventKind::Books], vec![], vec![], vec![], None).unwrap();
        let s = read_state(&engine, &only_books).unwrap();
        assert_eq!(kinds(&s), vec![EventKind::Books, EventKind::Books]);
    }
}
