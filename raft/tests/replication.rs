//! Replication that always makes progress, in three nodes over real loopback gRPC: a stopped
//! follower is retried at a backed-off pace (not in a tight loop), entries of many megabytes
//! reach followers over slow links and one catching up after a restart, and a follower whose data
//! directory went back in time is noticed, reported and caught up again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use qastore_raft::PeerStats;
use qastore_raft::{NodeId, Request};
use support::slow_link::SlowLink;
use support::{put, write_one, Cluster, SERIAL, WAIT};

/// A follower of `leader`.
fn follower_of(leader: NodeId) -> NodeId {
    if leader == 3 {
        2
    } else {
        3
    }
}

fn stats(c: &Cluster, of: NodeId, to: NodeId) -> PeerStats {
    c.nodes[&of]
        .peer_stats()
        .get(&to)
        .copied()
        .unwrap_or_default()
}

/// One entry of about `n` kilobytes (as many order-book snapshots would be), `tag` keeping
/// entries apart.
fn books(n: usize, tag: i64) -> Request {
    let value: String = format!("book {tag};")
        .chars()
        .cycle()
        .take(n * 1024)
        .collect();
    put(&format!("book-{tag}"), &value)
}

/// `n` entries of a few kilobytes each, like client batches, under keys of `day`.
fn batches(n: usize, day: u32) -> Vec<Request> {
    (0..n)
        .map(|i| put(&format!("{day}-{i}"), &format!("{day}/{i};").repeat(300)))
        .collect()
}

/// How many append streams `of` opened to `to` per second while `during` ran.
async fn stream_rate(c: &Cluster, of: NodeId, to: NodeId, during: impl std::future::Future) -> f64 {
    let before = stats(c, of, to);
    let t = Instant::now();
    during.await;
    let after = stats(c, of, to);
    (after.append_streams - before.append_streams) as f64 / t.elapsed().as_secs_f64()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Heartbeats open one stream each per 100 ms; anything near that is a paced retry, thousands
/// a second is a tight loop.
const MAX_STREAMS_PER_SEC: f64 = 25.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_to_a_stopped_follower_backs_off_and_resumes_when_it_returns() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    let down = follower_of(leader);
    let data = batches(20, 20241212);
    c.stop(down).await;
    for b in &data[..5] {
        write_one(&c, b.clone()).await;
    }
    // Writes keep coming while the follower is down: each hands replication new work.
    let rate = stream_rate(&c, leader, down, async {
        for b in &data[5..15] {
            write_one(&c, b.clone()).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let s = stats(&c, leader, down);
    assert!(
        rate < MAX_STREAMS_PER_SEC,
        "the leader opened {rate:.0} append streams a second to a stopped follower ({s:?})"
    );
    assert!(
        s.append_failures > 0,
        "no attempt reached the network: {s:?}"
    );
    c.start_node(down).await;
    let mut last = 0;
    for b in &data[15..] {
        last = write_one(&c, b.clone()).await;
    }
    c.wait_applied(last).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_of_ten_megabytes_commit_with_every_node_up_over_slow_links() {
    let _serial = SERIAL.lock().await;
    // Every node reaches the others over a 16 MiB/s link: a 10 MB append takes over half a
    // second to arrive, so its answer comes that late.
    let mut c = Cluster::empty(support::settings());
    let ports: Vec<(NodeId, u16)> = (1..=3).map(|id| (id, support::free_port())).collect();
    c.ports.extend(ports.iter().copied());
    let mut links = Vec::new();
    let mut overrides = std::collections::HashMap::new();
    for (id, port) in &ports {
        let real = format!("127.0.0.1:{port}");
        let link = SlowLink::start(real.clone(), 16 << 20).await;
        overrides.insert(*id, (real, link.addr.clone()));
        links.push(link);
    }
    for id in 1..=3 {
        let others: Vec<(String, String)> = overrides
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(_, pair)| pair.clone())
            .collect();
        c.start_node_with(id, |cfg| cfg.dial_overrides.extend(others))
            .await;
    }
    c.initialize().await;
    let mut last = 0;
    for tag in 0..3 {
        last = write_one(&c, books(10_000, tag)).await;
    }
    c.wait_applied(last).await;
    // A small write right after is not held up either.
    let small = write_one(&c, batches(1, 20241213).remove(0)).await;
    c.wait_applied(small).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_follower_catches_up_on_entries_of_several_megabytes() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    let down = follower_of(leader);
    c.stop(down).await;
    let mut last = 0;
    for tag in 0..8 {
        last = write_one(&c, books(4_000, tag)).await;
    }
    let started = Instant::now();
    c.start_node(down).await;
    // Generous: on an idle machine this takes about a second.
    let deadline = started + Duration::from_secs(90);
    loop {
        let applied = c.nodes[&down].status().applied.unwrap_or(0);
        if applied >= last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {down} applied {applied} of {last} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its progress shows where the lag is computed: the leader's matched index for it.
    let matched_deadline = Instant::now() + WAIT;
    loop {
        let s = c.nodes[&leader].status();
        let matched = s.replication.get(&down).copied().flatten().unwrap_or(0);
        if matched >= last {
            break;
        }
        assert!(
            Instant::now() < matched_deadline,
            "the leader sees node {down} at {matched} of {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_whose_disk_went_back_in_time_is_reported_and_caught_up() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    let f = follower_of(leader);
    let data = batches(20, 20241216);
    let mut last = 0;
    for b in &data[..5] {
        last = write_one(&c, b.clone()).await;
    }
    c.wait_applied(last).await;
    c.stop(f).await;
    let old_copy = c.root.path().join("old-copy");
    copy_dir(&c.dir(f), &old_copy);
    c.start_node(f).await;
    for b in &data[5..12] {
        last = write_one(&c, b.clone()).await;
    }
    // The follower holds (and acknowledged) everything up to `last`...
    c.wait_applied(last).await;
    c.stop(f).await;
    // ...then its disk goes back to the older copy.
    std::fs::remove_dir_all(c.dir(f)).unwrap();
    std::fs::rename(&old_copy, c.dir(f)).unwrap();
    c.start_node(f).await;
    let behind = c.nodes[&f].status().last_log_index.unwrap_or(0);
    assert!(
        behind < last,
        "the restored copy holds {behind}, not less than {last}"
    );
    let started = Instant::now();
    while c.nodes[&f].status().applied.unwrap_or(0) < last {
        assert!(
            started.elapsed() < WAIT,
            "node {f} stuck at {:?} of {last}; leader's record of it: {:?}",
            c.nodes[&f].status().applied,
            stats(&c, leader, f)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = stats(&c, leader, f);
    assert!(
        s.lost_entries >= 1,
        "the leader did not notice the lost entries: {s:?}"
    );
    // No tight loop on it afterwards, and it keeps up with new writes.
    let rate = stream_rate(&c, leader, f, async {
        for b in &data[12..] {
            last = write_one(&c, b.clone()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        rate < MAX_STREAMS_PER_SEC,
        "the leader opened {rate:.0} append streams a second to node {f}"
    );
    let hashes = c.hashes(last).await;
    let distinct: std::collections::BTreeSet<u64> = hashes.values().copied().collect();
    assert_eq!(distinct.len(), 1, "state hashes differ: {hashes:?}");
    c.stop_all().await;
}
