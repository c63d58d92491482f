//! Helpers for tests that run Raft nodes of a toy key/value application on loopback,
//! in-process.

#![allow(dead_code)]

pub mod harness;
pub mod slow_link;
pub mod toy;

use std::time::{Duration, Instant};

use qastore_raft::{NodeId, RaftNode, Request};

// Each test file uses some of these.
#[allow(unused_imports)]
pub use harness::{config, free_port, init_tracing, settings, TestApp, SERIAL, WAIT};
pub use toy::{put, Answer, Toy};

/// A node of the toy application.
pub type ToyNode = RaftNode<Toy>;

/// Toy nodes run nothing beside Raft.
impl TestApp for Toy {}

/// A cluster of toy nodes.
pub type Cluster = harness::Cluster<Toy>;

/// Writes `n` values under keys `{prefix}-{i}` through node `via` (the leader), and returns
/// the log index of the last.
pub async fn put_many(c: &Cluster, via: NodeId, prefix: &str, n: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        let out = c.nodes[&via]
            .write(put(&format!("{prefix}-{i}"), &format!("v{i}")), false, WAIT)
            .await
            .unwrap();
        assert_eq!(out.response, Answer::Stored(None));
        last = out.log_index;
    }
    last
}

/// Writes one entry through the leader; returns its log index. A leader that has just won
/// (its vote not yet on a slow disk) refuses writes for a moment: that is retried, as clients do.
pub async fn write_one(c: &Cluster, cmd: Request) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = c.leader().await;
        match c.nodes[&leader].write(cmd.clone(), false, WAIT).await {
            Ok(out) => {
                assert!(matches!(out.response, Answer::Stored(_)), "{out:?}");
                return out.log_index;
            }
            Err(qastore_raft::Error::NotLeader { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// The value node `id` holds under `key`.
pub fn value_at(c: &Cluster, id: NodeId, key: &str) -> Option<String> {
    c.nodes[&id]
        .engine()
        .unwrap()
        .get(&toy::key_of(key))
        .unwrap()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// Writes `n` values of `bytes` bytes each, one entry each, under keys `{prefix}/{i}` through
/// `node` (the leader), and returns the log index of the last.
pub async fn put_sized(node: &ToyNode, prefix: &str, n: usize, bytes: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        let key = format!("{prefix}/{i}");
        let value: String = key.chars().cycle().take(bytes).collect();
        let out = node.write(put(&key, &value), false, WAIT).await.unwrap();
        assert_eq!(out.response, Answer::Stored(None));
        last = out.log_index;
    }
    last
}
