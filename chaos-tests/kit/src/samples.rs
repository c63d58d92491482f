//! The storage crate's sample records (`qastore_exchange::record::samples`) as API records, so
//! that every test writes the same realistic order.

use qastore_cluster::convert::records::record_to_pb;
use qastore_exchange::record::{samples, Record};
use qastore_proto::v1 as pb;

/// Every sample record, one of each kind, as API records.
pub fn records() -> Vec<pb::Record> {
    samples::records().iter().map(record_to_pb).collect()
}

/// The sample order insert (a valid, live limit order), for `user` with order id `id`.
pub fn order(user: &str, id: &str) -> pb::Record {
    let mut order = samples::records()
        .into_iter()
        .find_map(|r| match r {
            Record::OrderInsert(o) => Some(o),
            _ => None,
        })
        .unwrap_or_else(|| unreachable!("the samples hold an order insert"));
    order.user_id = user.into();
    order.order_id = id.into();
    record_to_pb(&Record::OrderInsert(order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_order_carries_the_given_user_and_id() {
        let Some(pb::record::Kind::OrderInsert(o)) = order("u7", "o9").kind else {
            panic!("not an order insert");
        };
        assert_eq!((o.user_id.as_str(), o.order_id.as_str()), ("u7", "o9"));
        assert_eq!(o.status, pb::OrderStatus::Alive as i32);
        assert!(records().len() > 1);
    }
}
