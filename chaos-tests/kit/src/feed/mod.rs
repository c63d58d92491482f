//! Subscriptions checked the way a watch is in a robustness test: [`watch`] records what a
//! resuming subscription hands over while the cluster is being broken, [`journal`] reads the
//! committed events back afterwards, and [`check`] holds the one against the other (ordered,
//! gap-free, each event once, unaltered).

pub mod check;
pub mod journal;
mod place;
pub mod watch;

use qastore_cluster::feed::convert::filter_from_pb;
use qastore_exchange::feed::OrderPlace;
use qastore_exchange::record::Record;
use qastore_proto::v1 as pb;

pub use check::{check_subscription, Committed, Received, Seen, SubscriptionCheck};

/// A filter, and whether a record passes it, decided by the exchange's own filter (the one
/// every node applies) on the record as the node decodes it.
#[derive(Debug, Clone)]
pub struct Matcher {
    filter: qastore_exchange::feed::EventFilter,
}

impl Matcher {
    /// The matcher of `filter`; an error names the field at fault.
    pub fn new(filter: &pb::EventFilter) -> Result<Matcher, String> {
        filter_from_pb(Some(filter.clone()))
            .map(|filter| Matcher { filter })
            .map_err(|e| e.to_string())
    }

    /// Whether matching needs order updates placed (the filter has instrument or exchange
    /// parts and selects orders).
    pub fn needs_order_places(&self) -> bool {
        self.filter.needs_order_place()
    }

    /// Whether `record` passes; `place` is where an order update's order trades (`None`:
    /// unknown, as for an update parked before its insert).
    pub fn matches(&self, record: &Record, place: Option<&OrderPlace>) -> bool {
        self.filter.matches_with(record, place)
    }
}
