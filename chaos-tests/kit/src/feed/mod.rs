//! Subscriptions checked the way a watch is in a robustness test: [`watch`] records what a
//! resuming subscription hands over while the cluster is being broken, [`journal`] reads the
//! committed events back afterwards, and [`check`] holds the one against the other (ordered,
//! gap-free, each event once, unaltered).

pub mod check;
pub mod journal;
pub mod watch;

use qastore_cluster::convert::records::record_from_pb;
use qastore_cluster::feed::convert::filter_from_pb;
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

    /// Whether `record` passes. A record the node could not decode passes no filter.
    pub fn matches(&self, record: &pb::Record) -> bool {
        record_from_pb(record.clone()).is_ok_and(|r| self.filter.matches(&r))
    }
}
