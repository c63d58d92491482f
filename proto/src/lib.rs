//! QAStore's gRPC API: the `.proto` files of package `qastore.v1` and the code generated from
//! them at build time (with protox, so no system `protoc` is needed).
//!
//! * [`v1::raft_peer_server`] / [`v1::raft_peer_client`]: the peer service the nodes of one
//!   cluster use among themselves (replication, elections, snapshots, leadership transfer).

/// Package `qastore.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("qastore.v1");
}

/// Request metadata keys every peer call carries.
pub mod peer_metadata {
    /// The cluster id of the sender.
    pub const CLUSTER: &str = "qastore-cluster";
    /// The node id of the sender.
    pub const FROM: &str = "qastore-from";
    /// The node id the sender means to reach.
    pub const TO: &str = "qastore-to";
}
