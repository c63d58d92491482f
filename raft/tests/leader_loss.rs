//! A follower that loses its leader's connection probes the leader and, if it does not answer,
//! gives up its lease and runs for leader; a follower that alone cannot reach a healthy leader
//! must not depose it.
//!
//! The election timeouts here are a minute or more, so any election that happens within the
//! tests' waits comes from the leader-loss path, not from the timers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use qastore_raft::RaftConfig;
use support::{put, Cluster, SERIAL, WAIT};

fn slow_timers() -> RaftConfig {
    RaftConfig {
        election_timeout_min_ms: 60_000,
        election_timeout_max_ms: 120_000,
        ..support::settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_leader_is_replaced_without_waiting_out_its_lease() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three_with(slow_timers()).await;
    let old = c.leader().await;
    let term = c.nodes[&old].status().term;
    c.stop(old).await;
    // Without the probe, no follower could run for two minutes (lease + timeout).
    let new = c.leader().await;
    assert_ne!(new, old);
    assert!(c.nodes[&new].status().term > term);
    let lost: u64 = c.nodes.values().map(|n| n.leaders_lost()).sum();
    assert!(lost >= 1, "no follower gave up on the stopped leader");
    c.nodes[&new]
        .write(put("k-20241210", "v"), false, WAIT)
        .await
        .unwrap();
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_alone_cannot_reach_the_leader_does_not_depose_it() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::empty(slow_timers());
    c.start_node(1).await;
    c.start_node(2).await;
    // Node 3 dials node 1 at a port where nothing listens: its probes of node 1 fail, while
    // node 1 reaches node 3 as usual.
    let dead = support::free_port();
    let node1 = c.nodes[&1].peer_node().raft_addr;
    c.start_node_with(3, |cfg| {
        cfg.dial_overrides
            .insert(node1.clone(), format!("127.0.0.1:{dead}"));
    })
    .await;
    c.initialize().await;
    let leader = c.leader().await;
    assert_eq!(leader, 1, "node 1 initialized the cluster");
    let term = c.nodes[&1].status().term;
    c.nodes[&1]
        .write(put("k-20241211", "v"), false, WAIT)
        .await
        .unwrap();

    // Close a connection to node 3 so that it checks on its leader (and finds it silent).
    let addr = c.nodes[&3].peer_node().raft_addr;
    let deadline = Instant::now() + WAIT;
    while c.nodes[&3].leaders_lost() == 0 {
        assert!(Instant::now() < deadline, "node 3 never gave up on node 1");
        drop(tokio::net::TcpStream::connect(&addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Node 3 runs, but node 2 still hears node 1 and refuses: nothing changes.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for n in c.nodes.values() {
            let s = n.status();
            assert_eq!(s.term, term, "node {} moved to a new term", s.node_id);
            assert_eq!(s.leader, Some(1), "node {} left its leader", s.node_id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.nodes[&1]
        .write(put("k-20241212", "v"), false, WAIT)
        .await
        .unwrap();
    c.stop_all().await;
}
