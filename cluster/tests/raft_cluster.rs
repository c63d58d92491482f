//! Three nodes in one process, over real loopback gRPC, each with its own data directory and
//! real fsyncs: elections, replication, failover, leadership transfer, membership changes with
//! snapshot catch-up, full restarts, and refusal of another cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use qastore_cluster::ExchangeNode;
use qastore_exchange::query::Queries;
use qastore_exchange::Response;
use qastore_raft::Role;
use qastore_raft::{Error, NodeId};
use support::{batches, journal_outcomes, write, Cluster, ExchangeCommands, SERIAL, WAIT};

/// Writes `batches` through the current leader; returns the log index of each acknowledged one.
async fn write_all(c: &Cluster, batches: &[Vec<qastore_exchange::record::Record>]) -> Vec<u64> {
    let mut acked = Vec::new();
    for b in batches {
        let leader = c.leader().await;
        let out = c.nodes[&leader]
            .write_cmd(write(b.clone()), WAIT)
            .await
            .unwrap();
        assert!(matches!(out.response, Response::Written { .. }), "{out:?}");
        acked.push(out.log_index);
    }
    acked
}

/// The journal entries a node holds at the given log indexes, as (index, records).
fn journal_at(c: &Cluster, id: NodeId, indexes: &[u64]) -> Vec<(u64, usize)> {
    let engine = c.nodes[&id].engine().unwrap();
    let q = Queries::new(&engine);
    indexes
        .iter()
        .map(|&i| {
            (
                i,
                q.journal(i, 100_000)
                    .unwrap()
                    .iter()
                    .filter(|e| e.log_index == i)
                    .count(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_is_elected_and_every_node_ends_with_the_same_state() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let data = batches(40, 20241202);
    let acked = write_all(&c, &data).await;
    let last = *acked.last().unwrap();
    let hashes = c.hashes(last).await;
    let distinct: BTreeSet<u64> = hashes.values().copied().collect();
    assert_eq!(distinct.len(), 1, "state hashes differ: {hashes:?}");
    for id in 1..=3 {
        for (i, n) in journal_at(&c, id, &acked) {
            assert_eq!(n, 50, "node {id} misses records of the write at {i}");
        }
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_leader_stops_a_new_one_takes_writes_and_nothing_acknowledged_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let data = batches(30, 20241203);
    let mut acked = write_all(&c, &data[..15]).await;
    let old = c.leader().await;
    c.stop(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    acked.extend(write_all(&c, &data[15..]).await);
    let last = *acked.last().unwrap();
    c.wait_applied(last).await;
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        for (i, n) in journal_at(&c, id, &acked) {
            assert_eq!(n, 50, "node {id} lost the acknowledged write at {i}");
        }
    }
    // The old leader comes back as a follower and catches up.
    c.start_node(old).await;
    let hashes = c.hashes(last).await;
    assert_eq!(
        hashes.values().collect::<BTreeSet<_>>().len(),
        1,
        "{hashes:?}"
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_to_the_chosen_follower() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    write_all(&c, &batches(5, 20241204)).await;
    let old = c.leader().await;
    let target = (1..=3).find(|&id| id != old).unwrap();
    c.nodes[&old].transfer_leader(target).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while c.leader().await != target {
        assert!(
            std::time::Instant::now() < deadline,
            "leadership did not move"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.nodes[&target].status().role, Role::Leader);
    // The old leader refuses writes and names the new one.
    match c.nodes[&old]
        .write_cmd(write(batches(1, 20241204)[0].clone()), WAIT)
        .await
    {
        Err(Error::NotLeader {
            leader: Some((id, _)),
        }) => assert_eq!(id, target),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    write_all(&c, &batches(3, 20241205)).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_rejoins_under_a_new_id_through_a_snapshot_while_writes_continue() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let data = batches(120, 20241206);
    let mut acked = write_all(&c, &data[..60]).await;
    // Snapshot and purge the log on the survivors, so the newcomer needs the snapshot.
    for n in c.nodes.values() {
        n.trigger_snapshot().await.unwrap();
    }
    let leader = c.leader().await;
    let victim = (1..=3).find(|&id| id != leader).unwrap();
    c.stop(victim).await;
    std::fs::remove_dir_all(c.dir(victim)).unwrap();
    c.nodes[&leader].remove_node(victim).await.unwrap();
    let status = c.nodes[&leader].status();
    assert!(!status.voters.contains(&victim) && !status.nodes.contains_key(&victim));

    let newcomer: NodeId = 4;
    c.start_node(newcomer).await;
    let node = c.nodes[&newcomer].peer_node();
    // Writes continue while it catches up.
    let writer = {
        let leader_node = &c.nodes[&leader];
        let more = data[60..90].to_vec();
        async move {
            let mut idx = Vec::new();
            for b in more {
                idx.push(
                    leader_node
                        .write_cmd(write(b), WAIT)
                        .await
                        .unwrap()
                        .log_index,
                );
            }
            idx
        }
    };
    let add = c.nodes[&leader].add_learner(newcomer, node, Some(WAIT));
    let (more, added) = tokio::join!(writer, add);
    added.unwrap();
    acked.extend(more);
    let voters: BTreeSet<NodeId> = c.nodes[&leader]
        .status()
        .voters
        .into_iter()
        .chain([newcomer])
        .collect();
    c.nodes[&leader]
        .change_voters(voters.clone())
        .await
        .unwrap();
    assert_eq!(c.nodes[&leader].status().voters, voters);
    acked.extend(write_all(&c, &data[90..]).await);
    let last = *acked.last().unwrap();
    let hashes = c.hashes(last).await;
    assert_eq!(
        hashes.values().collect::<BTreeSet<_>>().len(),
        1,
        "{hashes:?}"
    );
    let st = c.nodes[&newcomer].status();
    assert!(
        st.snapshot.is_some(),
        "the newcomer caught up through a snapshot: {st:?}"
    );
    for (i, n) in journal_at(&c, newcomer, &acked) {
        assert_eq!(n, 50, "the newcomer misses the write at {i}");
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_all_three_restart_every_acknowledged_write_is_there_once() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let data = batches(40, 20241209);
    let mut written = Vec::new();
    for b in &data {
        let leader = c.leader().await;
        let out = c.nodes[&leader]
            .write_cmd(write(b.clone()), WAIT)
            .await
            .unwrap();
        let Response::Written { outcomes } = out.response else {
            panic!("{out:?}");
        };
        written.push((out.log_index, outcomes));
    }
    let last = written.last().unwrap().0;
    c.wait_applied(last).await;
    // Part of what was applied is only in memtables: the restart must re-apply it from the log.
    assert!(
        c.nodes.values().any(|n| {
            let e = n.engine().unwrap();
            e.flushed_index() < e.applied_index()
        }),
        "every node flushed everything: the test would not exercise re-applying"
    );
    c.stop_all().await;
    for id in 1..=3 {
        c.start_node(id).await;
    }
    c.leader().await;
    c.wait_applied(last).await;
    for id in 1..=3 {
        let engine = c.nodes[&id].engine().unwrap();
        for (index, outcomes) in &written {
            let got = journal_outcomes(&engine, *index);
            // Applied twice, an insert would read back as a duplicate of itself.
            assert_eq!(&got, outcomes, "node {id}, write at {index}");
        }
    }
    let after = c.hashes(c.nodes[&1].status().applied.unwrap()).await;
    assert_eq!(
        after.values().collect::<BTreeSet<_>>().len(),
        1,
        "{after:?}"
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_of_another_cluster_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let leader = c.leader().await;
    // A stranger started under another cluster id, pointed at by a membership change.
    let dir = c.root.path().join("stranger");
    let port = support::free_port();
    let stranger = ExchangeNode::start(support::config("other-cluster", 9, &dir, port))
        .await
        .unwrap();
    let added = c.nodes[&leader]
        .add_learner(9, stranger.peer_node(), Some(Duration::from_secs(4)))
        .await;
    assert!(
        matches!(added, Err(Error::Timeout(_))),
        "a node of another cluster must never catch up: {added:?}"
    );
    let st = stranger.status();
    assert_eq!(
        st.last_log_index, None,
        "the stranger took no entries: {st:?}"
    );
    let matched = c.nodes[&leader]
        .status()
        .replication
        .get(&9)
        .copied()
        .flatten();
    assert_eq!(
        matched, None,
        "the leader never got an answer from the stranger"
    );
    stranger.shutdown().await.unwrap();
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_converts_closed_days_and_runs_retention_on_schedule_on_every_node() {
    let _serial = SERIAL.lock().await;
    let settings = qastore_raft::RaftConfig {
        schedule_interval_secs: 1,
        ..support::settings()
    };
    let mut c = Cluster::three_with(settings).await;
    write_all(&c, &batches(20, 20241202)).await;
    let leader = c.leader().await;
    let (_, r) = c.nodes[&leader]
        .propose_cmd(
            qastore_exchange::SystemCommand::SetClusterSettings {
                toml: "[retention]\nkeep_log_entries = 5\n".into(),
            },
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r, Response::SettingsChanged);
    // Trading day 2024-12-02 closed long ago: the schedule converts it everywhere.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let done = c.nodes.values().all(|n| {
            let e = n.engine().unwrap();
            qastore_exchange::olap::pending_days(&e, qastore_exchange::keys::Stream::Ticks)
                .unwrap()
                .is_empty()
                && qastore_exchange::olap::pending_days(&e, qastore_exchange::keys::Stream::Trades)
                    .unwrap()
                    .is_empty()
                && Queries::new(&e)
                    .journal(0, 1)
                    .unwrap()
                    .first()
                    .is_none_or(|j| j.log_index > 10)
        });
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule did not run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Ticks that arrive for the converted day later reach its Parquet as a second part file,
    // written by every node at the same log index.
    let more = batches(40, 20241202);
    write_all(&c, &more[20..]).await;
    let part1 = |n: &ExchangeNode| {
        let e = n.engine().unwrap();
        let stream = qastore_exchange::keys::Stream::Ticks;
        let late: Vec<_> = qastore_exchange::olap::catalog::all(&e, stream)
            .unwrap()
            .into_iter()
            .filter(|p| p.part() == 1)
            .collect();
        let pending = qastore_exchange::olap::pending_days(&e, stream).unwrap();
        (late, pending.is_empty())
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let parts: Vec<_> = c.nodes.values().map(|n| part1(n)).collect();
        if parts.iter().all(|(late, done)| !late.is_empty() && *done)
            && parts.windows(2).all(|w| w[0] == w[1])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "late ticks were not converted everywhere: {parts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = c.nodes[&leader].status().last_log_index.unwrap();
    let hashes = c.hashes(last).await;
    assert_eq!(
        hashes.values().collect::<BTreeSet<_>>().len(),
        1,
        "{hashes:?}"
    );
    c.stop_all().await;
}
