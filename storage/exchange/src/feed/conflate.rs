//! Conflation: within a window, only the latest state per key, with the count of events it
//! stands for. Accounts merge per (user, currency), positions per (user, exchange,
//! instrument), orders per (user, order id), ticks and books per instrument. Trades are never
//! merged: each is a fill someone must see.
//!
//! An order inserted and updated within one window comes out as the insert with the updates'
//! status and volume left folded in. Each merged event carries the position of the
//! latest event it stands for, so positions still strictly increase along a stream.

use std::collections::HashMap;

use super::{CommittedEvent, Position};
use crate::apply::Outcome;
use crate::record::Record;

/// One event out of a window: the latest state of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflated {
    /// The position of the latest event it stands for.
    pub position: Position,
    /// That event's commit time.
    pub commit_ns: i64,
    /// The state.
    pub record: Record,
    /// The latest event's outcome.
    pub outcome: Outcome,
    /// How many events it stands for (itself included).
    pub merged: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String, String),
    Position(String, String, String),
    Order(String, String),
    Tick(String),
    Book(String),
    /// Never merged: each gets a key of its own.
    Unique(Position),
}

fn key_of(record: &Record, position: Position) -> Key {
    match record {
        Record::AccountUpdate(a) => Key::Account(a.user_id.clone(), a.currency.clone()),
        Record::PositionUpdate(p) => Key::Position(
            p.user_id.clone(),
            p.exchange_id.clone(),
            p.instrument_id.clone(),
        ),
        Record::OrderInsert(o) => Key::Order(o.user_id.clone(), o.order_id.clone()),
        Record::OrderUpdate(u) => Key::Order(u.user_id.clone(), u.order_id.clone()),
        Record::Tick(t) => Key::Tick(t.instrument_id.clone()),
        Record::OrderBookSnapshot(b) => Key::Book(b.instrument_id.clone()),
        Record::TradeExecuted(_) => Key::Unique(position),
    }
}

/// Gathers one window of events.
#[derive(Debug, Default)]
pub struct Conflator {
    slots: HashMap<Key, usize>,
    out: Vec<Conflated>,
    events: u64,
}

impl Conflator {
    /// An empty window.
    pub fn new() -> Conflator {
        Conflator::default()
    }

    /// Adds the event at `position` (positions must come in increasing order).
    pub fn push(&mut self, position: Position, commit_ns: i64, event: CommittedEvent) {
        self.events += 1;
        let key = key_of(&event.record, position);
        if let Some(&slot) = self.slots.get(&key) {
            let held = &mut self.out[slot];
            fold(&mut held.record, event.record);
            held.position = position;
            held.commit_ns = commit_ns;
            held.outcome = event.outcome;
            held.merged = held.merged.saturating_add(1);
            return;
        }
        self.slots.insert(key, self.out.len());
        self.out.push(Conflated {
            position,
            commit_ns,
            record: event.record,
            outcome: event.outcome,
            merged: 1,
        });
    }

    /// How many distinct keys the window holds.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// How many events went into the window.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Ends the window: its events in position order; the conflator is empty again.
    pub fn take(&mut self) -> Vec<Conflated> {
        self.slots.clear();
        self.events = 0;
        let mut out = std::mem::take(&mut self.out);
        out.sort_by_key(|c| c.position);
        out
    }
}

/// Makes `held` the state after `next`: the later record, except that an order insert keeps
/// its fields and takes an update's status and volume left.
fn fold(held: &mut Record, next: Record) {
    match (held, next) {
        (Record::OrderInsert(o), Record::OrderUpdate(u)) => {
            o.status = u.status;
            o.volume_left = u.volume_left;
        }
        (held, next) => *held = next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::samples;

    fn event(ordinal: u32, record: Record) -> CommittedEvent {
        CommittedEvent {
            ordinal,
            record,
            outcome: Outcome::TickRecorded,
        }
    }

    #[test]
    fn the_latest_state_per_key_wins_and_counts_what_it_merged() {
        let tick = samples::first(|r| matches!(r, Record::Tick(_))).unwrap();
        let mut later = tick.clone();
        if let Record::Tick(t) = &mut later {
            t.last_price += 1.0;
        }
        let mut c = Conflator::new();
        c.push(Position::new(1, 0), 10, event(0, tick.clone()));
        c.push(Position::new(1, 1), 10, event(1, later.clone()));
        c.push(Position::new(2, 0), 20, event(0, later.clone()));
        assert_eq!(c.events(), 3);
        let out = c.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].merged, 3);
        assert_eq!(out[0].position, Position::new(2, 0));
        assert_eq!(out[0].commit_ns, 20);
        assert!(c.is_empty() && c.events() == 0);
    }

    #[test]
    fn trades_are_never_merged_and_output_follows_positions() {
        let trade = samples::first(|r| matches!(r, Record::TradeExecuted(_))).unwrap();
        let account = samples::first(|r| matches!(r, Record::AccountUpdate(_))).unwrap();
        let mut c = Conflator::new();
        c.push(Position::new(1, 0), 0, event(0, account.clone()));
        c.push(Position::new(1, 1), 0, event(1, trade.clone()));
        c.push(Position::new(1, 2), 0, event(2, trade.clone()));
        c.push(Position::new(1, 3), 0, event(3, account.clone()));
        let out = c.take();
        let positions: Vec<_> = out.iter().map(|c| c.position.ordinal).collect();
        assert_eq!(positions, vec![1, 2, 3]);
        assert_eq!(out[2].merged, 2);
    }

    #[test]
    fn an_order_inserted_and_updated_in_one_window_is_the_insert_with_the_update_folded_in() {
        let insert = samples::first(|r| matches!(r, Record::OrderInsert(_))).unwrap();
        let update = samples::first(|r| matches!(r, Record::OrderUpdate(_))).unwrap();
        let mut c = Conflator::new();
        c.push(Position::new(5, 0), 0, event(0, insert));
        c.push(Position::new(5, 1), 0, event(1, update.clone()));
        let out = c.take();
        assert_eq!(out.len(), 1);
        let (Record::OrderInsert(o), Record::OrderUpdate(u)) = (&out[0].record, &update) else {
            panic!("{:?}", out[0].record)
        };
        assert_eq!((o.status, o.volume_left), (u.status, u.volume_left));
        assert_eq!(out[0].merged, 2);
    }
}
