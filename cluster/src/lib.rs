//! A QAStore node: gRPC services, leader forwarding, follower reads, admin and failover drills,
//! and the metrics / health HTTP endpoint, built on `qastore-raft` and `qastore-storage`.
