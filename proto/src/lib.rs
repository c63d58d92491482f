//! QAStore's gRPC API: the `.proto` files of package `qastore.v1` and the code generated from
//! them at build time (with protox, so no system `protoc` is needed).
//!
//! * [`v1::raft_peer_server`] / [`v1::raft_peer_client`]: the peer service the nodes of one
//!   cluster use among themselves (replication, elections, snapshots, leadership transfer).
//! * [`v1::store_server`] / [`v1::store_client`]: the client API (writes and queries).
//! * [`v1::admin_server`] / [`v1::admin_client`]: the operator API.
//! * [`v1::feed_client`]: subscriptions and durable consumers; [`frames::feed_server`] is the
//!   server the node runs, whose `Subscribe` writes events encoded once per batch
//!   ([`frames::SubscribeFrame`]), the same bytes on the wire as `v1::feed_server`'s messages.
//! * [`peer_metadata`] and [`api_metadata`]: the gRPC metadata keys both sides agree on.
//!
//! The messages read and write JSON (serde), with enum fields by name; how is internal.

/// Package `qastore.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("qastore.v1");
}

include!(concat!(env!("OUT_DIR"), "/methods.rs"));

pub mod frames;
mod record_json;
mod serde_enums;
mod write_failure;

/// Request metadata keys every peer call carries.
pub mod peer_metadata {
    /// The cluster id of the sender.
    pub const CLUSTER: &str = "qastore-cluster";
    /// The node id of the sender.
    pub const FROM: &str = "qastore-from";
    /// The node id the sender means to reach.
    pub const TO: &str = "qastore-to";
}

/// Response metadata keys of the client API.
pub mod api_metadata {
    /// On FAILED_PRECONDITION and UNAVAILABLE: the leader's client address, when known.
    pub const LEADER: &str = "qastore-leader";
    /// On UNAVAILABLE during an election: how long to wait before retrying, in milliseconds.
    pub const RETRY_AFTER_MS: &str = "retry-after-ms";
    /// On DEADLINE_EXCEEDED for ack level ALL: the log index the write committed at.
    pub const LOG_INDEX: &str = "qastore-log-index";
    /// On a forwarded write: set by the forwarding node, so the leader never forwards again.
    pub const FORWARDED: &str = "qastore-forwarded";
    /// On OUT_OF_RANGE from a subscription: the earliest position the journal still holds.
    pub const EARLIEST_POSITION: &str = "qastore-earliest-position";
    /// On a subscription cut off: the last position it delivered.
    pub const LAST_DELIVERED: &str = "qastore-last-delivered";

    /// The leader's client address named in `md` ([`LEADER`]), if any.
    pub fn leader_hint(md: &tonic::metadata::MetadataMap) -> Option<&str> {
        md.get(LEADER).and_then(|v| v.to_str().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::v1;

    #[test]
    fn records_read_and_write_json_with_enum_names() {
        let line = r#"{"order_insert": {"user_id": "u1", "order_id": "o1", "direction": "BUY", "offset": "OFFSET_OPEN", "price_type": 1}}"#;
        let r: v1::Record = serde_json::from_str(line).unwrap();
        let Some(v1::record::Kind::OrderInsert(o)) = &r.kind else {
            panic!("{r:?}")
        };
        assert_eq!(o.direction, v1::Direction::Buy as i32);
        assert_eq!(o.offset, v1::Offset::Open as i32);
        assert_eq!(o.price_type, v1::PriceType::Limit as i32);
        let back = serde_json::to_string(&r).unwrap();
        assert!(back.contains(r#""direction":"BUY""#), "{back}");
        let bad = r#"{"order_insert": {"direction": "SIDEWAYS"}}"#;
        let e = serde_json::from_str::<v1::Record>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SIDEWAYS"), "{e}");
        let bad = r#"{"order_insert": {"colour": 1}}"#;
        assert!(serde_json::from_str::<v1::Record>(bad).is_err());
    }
}
