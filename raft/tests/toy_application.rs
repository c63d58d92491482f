//! The Raft layer with an application of its own: a toy key/value store, run as three
//! in-process nodes over loopback. Writes reach every node's engine and the application's
//! in-memory state, a restarted node re-applies its tail exactly once, and a learner added
//! after the log was purged gets the data through a snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use qastore_raft::{Error, NodeId, Request};
use support::{put, put_many, value_at, Answer, Cluster, SERIAL, WAIT};

fn follower_of(c: &Cluster, leader: NodeId) -> NodeId {
    *c.nodes.keys().find(|id| **id != leader).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_reach_every_node_and_a_follower_reads_them() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    let node = &c.nodes[&leader];
    let first = node.write(put("a", "1"), false, WAIT).await.unwrap();
    assert_eq!(first.response, Answer::Stored(None));
    let second = node.write(put("a", "2"), true, WAIT).await.unwrap();
    assert_eq!(second.response, Answer::Stored(Some("1".into())));
    assert_eq!(second.all_acked, Some(true), "every voter is up");
    assert!(second.log_index > first.log_index);
    node.write(put("b", "x"), false, WAIT).await.unwrap();
    // What the application refuses is an answer; the entry still counts.
    let junk = Request::from_bytes(Bytes::from_static(b"no equals sign"));
    let refused = node.write(junk, false, WAIT).await.unwrap();
    assert!(
        matches!(refused.response, Answer::Refused(_)),
        "{refused:?}"
    );

    c.wait_applied(refused.log_index).await;
    for (id, n) in &c.nodes {
        assert_eq!(value_at(&c, *id, "a").as_deref(), Some("2"), "node {id}");
        assert_eq!(value_at(&c, *id, "b").as_deref(), Some("x"), "node {id}");
        assert_eq!(n.app().stored(), 3, "node {id}");
        assert_eq!(n.applied_index(), refused.log_index, "node {id}");
    }

    // A follower serves reads of what it applied, and refuses writes naming the leader.
    let follower = follower_of(&c, leader);
    let e = c.nodes[&follower]
        .write(put("c", "1"), false, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotLeader { leader: Some((l, _)) } if *l == leader),
        "{e}"
    );
    assert_eq!(value_at(&c, follower, "c"), None);

    // A hash mark proposed through the application's own command: every node hashes the
    // same state at it.
    let mark = c.nodes[&leader].hash_mark(WAIT).await.unwrap();
    let mut hashes = BTreeSet::new();
    for n in c.nodes.values() {
        hashes.insert(n.state_hash_at(mark, WAIT).await.unwrap());
    }
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_that_sees_an_entry_being_applied_reports_an_index_covering_it() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    let node = c.nodes[&leader].clone();
    let write = tokio::spawn(async move {
        node.write(put("k", "slow:1"), false, WAIT)
            .await
            .unwrap()
            .log_index
    });
    // Poll until the value shows: its entry is then still being applied (for SLOW_APPLY).
    let deadline = Instant::now() + WAIT;
    let (applied_then, visible_then) = loop {
        if value_at(&c, leader, "k").as_deref() == Some("slow:1") {
            let n = &c.nodes[&leader];
            break (n.applied_index(), n.visible_index());
        }
        assert!(Instant::now() < deadline, "the slow value never showed");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    let index = write.await.unwrap();
    assert!(
        applied_then < index,
        "the value was seen while its entry {index} was applied (applied {applied_then})"
    );
    assert!(
        visible_then >= index,
        "the value of entry {index} showed while the node named {visible_then} as the newest visible"
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_re_applies_its_tail_exactly_once() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    put_many(&c, leader, "before", 5).await;
    let follower = follower_of(&c, leader);
    // Stopped without a flush: the engine lost what it applied since its last flush, and the
    // log holds it.
    c.stop(follower).await;
    put_many(&c, leader, "while-down", 3).await;
    c.start_node(follower).await;
    let last = put_many(&c, leader, "after", 2).await;
    c.wait_applied(last).await;
    let n = &c.nodes[&follower];
    assert_eq!(n.applied_index(), last);
    // The count of stored values lives in the engine: applying an entry twice would count it
    // twice.
    assert_eq!(n.app().stored(), 10);
    for key in ["before-0", "before-4", "while-down-2", "after-1"] {
        assert!(value_at(&c, follower, key).is_some(), "{key} is missing");
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_added_after_the_log_was_purged_gets_the_data_through_a_snapshot() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    let last = put_many(&c, leader, "k", 80).await;
    c.wait_applied(last).await;
    for n in c.nodes.values() {
        n.trigger_snapshot().await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while c.nodes[&leader].status().purged.is_none() {
        assert!(Instant::now() < deadline, "the leader never purged its log");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let learner: NodeId = 4;
    c.start_node(learner).await;
    let peer = c.nodes[&learner].peer_node();
    c.nodes[&leader]
        .add_learner(learner, peer, Some(WAIT))
        .await
        .unwrap();
    c.wait_applied(last).await;
    let st = c.nodes[&learner].status();
    assert!(
        st.snapshot.is_some(),
        "caught up through a snapshot: {st:?}"
    );
    assert!(st.learners.contains(&learner), "{st:?}");
    assert_eq!(value_at(&c, learner, "k-0").as_deref(), Some("v0"));
    assert_eq!(value_at(&c, learner, "k-79").as_deref(), Some("v79"));
    // Nothing was applied on the learner but the snapshot: the application took its state
    // from the installed engine.
    assert_eq!(c.nodes[&learner].app().stored(), 80);

    // The learner keeps receiving the log after the snapshot.
    let more = c.nodes[&leader]
        .write(put("k-0", "again"), false, WAIT)
        .await
        .unwrap();
    assert_eq!(more.response, Answer::Stored(Some("v0".into())));
    c.wait_applied(more.log_index).await;
    assert_eq!(value_at(&c, learner, "k-0").as_deref(), Some("again"));
    assert_eq!(c.nodes[&learner].app().stored(), 81);
    c.stop_all().await;
}
