//! Where an order trades, for matching its updates against a filter's instrument and exchange
//! parts: an update names only its order, so the place comes from the order's insert.
//!
//! Only an update applied to a known order (outcome [`Outcome::OrderUpdated`]) has a place. An
//! update parked because it came before its insert has none, even once the insert arrived:
//! what an event matches must not depend on when it is read, so every node, live or reading
//! the journal, decides the same for it.

use std::collections::HashMap;

use super::EventFilter;
use crate::apply::Outcome;
use crate::error::{Error, Result};
use crate::keys;
use crate::record::{decode, OrderInsert, OrderState, Record};
use qastore_lsm::Engine;

/// The exchange and instrument an order was inserted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderPlace {
    /// Exchange code (`SHFE`, `CFFEX`, ...).
    pub exchange_id: String,
    /// Contract code (`rb2501`, `IF2412`, ...).
    pub instrument_id: String,
}

impl OrderPlace {
    /// The place of `order`.
    pub fn of(order: &OrderInsert) -> OrderPlace {
        OrderPlace {
            exchange_id: order.exchange_id.clone(),
            instrument_id: order.instrument_id.clone(),
        }
    }
}

/// The order `(user, order id)` that has a place for `record`: set only for an order update
/// applied to its order.
pub fn placed_order(record: &Record, outcome: Outcome) -> Option<(&str, &str)> {
    match record {
        Record::OrderUpdate(u) if outcome == Outcome::OrderUpdated => {
            Some((&u.user_id, &u.order_id))
        }
        _ => None,
    }
}

/// The order whose place `filter` needs to match `record`: [`placed_order`], when the filter
/// has parts a place can decide.
pub fn wanted<'a>(
    filter: &EventFilter,
    record: &'a Record,
    outcome: Outcome,
) -> Option<(&'a str, &'a str)> {
    if !filter.needs_order_place() {
        return None;
    }
    placed_order(record, outcome)
}

/// The place of the order stored under `(user, order_id)`, if the engine holds it.
pub fn stored(engine: &Engine, user: &str, order_id: &str) -> Result<Option<OrderPlace>> {
    let key = keys::order(user, order_id);
    match engine.get(&key)? {
        Some(v) => {
            let state = decode::<OrderState>(&v).map_err(|e| {
                Error::bad_value(String::from_utf8_lossy(&key).into_owned(), e.to_string())
            })?;
            Ok(Some(OrderPlace::of(&state.order)))
        }
        None => Ok(None),
    }
}

/// Places of orders, learned from the inserts one read goes past and looked up in the engine
/// for the rest. Meant to live for one read: kept for a stream's life it would grow without
/// bound.
#[derive(Debug, Default)]
pub struct OrderPlaces {
    /// By user, then order id: looked up with borrowed ids, no key built per event.
    known: HashMap<String, HashMap<String, OrderPlace>>,
}

impl OrderPlaces {
    /// Knows no place yet.
    pub fn new() -> OrderPlaces {
        OrderPlaces::default()
    }

    /// Learns an order's place from its insert, when the insert stored the order (a duplicate
    /// insert may name another place than the order kept).
    pub fn learn(&mut self, record: &Record, outcome: Outcome) {
        if let (Record::OrderInsert(o), Outcome::OrderInserted { .. }) = (record, outcome) {
            if self.get(&o.user_id, &o.order_id).is_none() {
                self.insert(&o.user_id, &o.order_id, OrderPlace::of(o));
            }
        }
    }

    /// Records the place of `(user, order_id)`.
    pub fn insert(&mut self, user: &str, order_id: &str, place: OrderPlace) {
        self.known
            .entry(user.to_string())
            .or_default()
            .insert(order_id.to_string(), place);
    }

    /// The place known for `(user, order_id)`.
    pub fn get(&self, user: &str, order_id: &str) -> Option<&OrderPlace> {
        self.known.get(user)?.get(order_id)
    }

    /// The place `filter` needs to match `record`, where it is known.
    pub fn for_event(
        &self,
        filter: &EventFilter,
        record: &Record,
        outcome: Outcome,
    ) -> Option<&OrderPlace> {
        let (user, order_id) = wanted(filter, record, outcome)?;
        self.get(user, order_id)
    }

    /// The orders whose places `filter` needs for `events` and that are not known yet, each
    /// once.
    pub fn missing<'a>(
        &self,
        filter: &EventFilter,
        events: impl IntoIterator<Item = (&'a Record, Outcome)>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (record, outcome) in events {
            if let Some((user, order_id)) = wanted(filter, record, outcome) {
                let seen = out.iter().any(|(u, o)| u == user && o == order_id);
                if !seen && self.get(user, order_id).is_none() {
                    out.push((user.to_string(), order_id.to_string()));
                }
            }
        }
        out
    }

    /// The place `filter` needs to match `record`: known already, or read from `engine` (and
    /// kept for the rest of the read).
    pub fn resolve(
        &mut self,
        engine: &Engine,
        filter: &EventFilter,
        record: &Record,
        outcome: Outcome,
    ) -> Result<Option<&OrderPlace>> {
        let Some((user, order_id)) = wanted(filter, record, outcome) else {
            return Ok(None);
        };
        if self.get(user, order_id).is_none() {
            if let Some(place) = stored(engine, user, order_id)? {
                self.insert(user, order_id, place);
            }
        }
        Ok(self.get(user, order_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::record::{samples, OrderUpdate};
    use qastore_lsm::vfs::OsVfs;
    use qastore_lsm::EngineConfig;

    fn insert_of(records: &[Record]) -> OrderInsert {
        records
            .iter()
            .find_map(|r| match r {
                Record::OrderInsert(o) => Some(o.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn update_of(order: &OrderInsert) -> Record {
        Record::OrderUpdate(OrderUpdate {
            user_id: order.user_id.clone(),
            order_id: order.order_id.clone(),
            ..OrderUpdate::default()
        })
    }

    fn on_instrument(id: &str) -> EventFilter {
        EventFilter::new(vec![], vec![id.into()], vec![], vec![], None).unwrap()
    }

    #[test]
    fn only_applied_updates_are_placed_and_only_for_filters_that_need_it() {
        let order = insert_of(&samples::records());
        let update = update_of(&order);
        let f = on_instrument("IF2412");
        assert!(wanted(&f, &update, Outcome::OrderUpdated).is_some());
        assert!(wanted(&f, &update, Outcome::UpdateParked).is_none());
        assert!(wanted(&EventFilter::everything(), &update, Outcome::OrderUpdated).is_none());
        let insert = Record::OrderInsert(order);
        let inserted = Outcome::OrderInserted { merged_updates: 0 };
        assert!(wanted(&f, &insert, inserted).is_none());
    }

    #[test]
    fn places_come_from_stored_inserts_and_the_engine_never_from_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
        let order = insert_of(&samples::records());
        apply(&engine, &[Record::OrderInsert(order.clone())], 1).unwrap();
        let update = update_of(&order);
        let f = on_instrument("IF2412");

        let mut places = OrderPlaces::new();
        assert_eq!(
            places.missing(&f, [(&update, Outcome::OrderUpdated)]),
            vec![(order.user_id.clone(), order.order_id.clone())]
        );
        let place = places
            .resolve(&engine, &f, &update, Outcome::OrderUpdated)
            .unwrap()
            .cloned();
        assert_eq!(place, Some(OrderPlace::of(&order)));
        assert!(places
            .missing(&f, [(&update, Outcome::OrderUpdated)])
            .is_empty());

        let mut elsewhere = order.clone();
        elsewhere.instrument_id = "IF2501".into();
        let mut learned = OrderPlaces::new();
        learned.learn(&Record::OrderInsert(elsewhere), Outcome::DuplicateOrder);
        assert!(learned.get(&order.user_id, &order.order_id).is_none());
        learned.learn(
            &Record::OrderInsert(order.clone()),
            Outcome::OrderInserted { merged_updates: 0 },
        );
        assert_eq!(
            learned.for_event(&f, &update, Outcome::OrderUpdated),
            Some(&OrderPlace::of(&order))
        );
        assert_eq!(stored(&engine, "nobody", "none").unwrap(), None);
    }
}
