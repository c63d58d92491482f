//! A node whose engine is damaged says so, refuses to serve the damaged state, and repairs
//! itself with a checkpoint from a peer, keeping its log and identity; a node with no peer to
//! repair from refuses to start, naming the file and offset. The damaged node runs on the
//! simulated file system, which flips bytes and fails writes on demand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qastore_lsm::vfs::{Fault, FaultOp, SimVfs, Vfs};
use qastore_raft::Error;
use support::{config, free_port, init_tracing, put_sized, Cluster, ToyNode, SERIAL, WAIT};

const SIM_DIR: &str = "/n3";
/// The bytes of one entry's value: a table's first block holds more than 100 bytes of them.
const ENTRY_BYTES: usize = 4096;

async fn start_sim_node(c: &Cluster, vfs: &SimVfs, port: u16) -> qastore_raft::Result<ToyNode> {
    // A node stopped inside this process lets go of its WAL lock when the last task holding
    // its log store ends, which can be a moment after `shutdown` returns.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut cfg = config(&c.id, 3, Path::new(SIM_DIR), port);
        cfg.raft = c.settings.clone();
        match ToyNode::start_with_vfs(cfg, vfs.shared()).await {
            Err(Error::Storage(qastore_lsm::Error::Locked { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            started => return started,
        }
    }
}

/// Nodes 1 and 2 on disk, node 3 on `vfs`, all voters.
async fn cluster_with_sim_node(vfs: &SimVfs, port: u16) -> Cluster {
    let mut c = Cluster::empty(support::settings());
    c.start_node(1).await;
    c.start_node(2).await;
    let n3 = start_sim_node(&c, vfs, port).await.unwrap();
    c.insert(3, n3);
    c.initialize().await;
    c
}

/// Writes `n` entries through the leader; returns the log index of the last.
async fn write_some(c: &Cluster, n: usize, day: u32) -> u64 {
    let leader = c.leader().await;
    put_sized(&c.nodes[&leader], &day.to_string(), n, ENTRY_BYTES).await
}

fn tables(vfs: &SimVfs, dir: &Path) -> Vec<PathBuf> {
    vfs.list(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .map(|n| dir.join(n))
        .collect()
}

/// Waits until node 3 reports no damage.
async fn wait_repaired(node: &ToyNode) {
    let deadline = Instant::now() + WAIT;
    while node.state_machine().damage_reason().is_some() {
        assert!(Instant::now() < deadline, "node 3 was not repaired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_same_state(c: &Cluster) {
    let last = write_some(c, 2, 20241204).await;
    let hashes = c.hashes(last).await;
    let distinct: std::collections::BTreeSet<u64> = hashes.values().copied().collect();
    assert_eq!(distinct.len(), 1, "replicas differ: {hashes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_starting_with_a_flipped_table_byte_repairs_from_a_peer() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let vfs = SimVfs::new(31);
    let port = free_port();
    let mut c = cluster_with_sim_node(&vfs, port).await;
    let last = write_some(&c, 6, 20241202).await;
    c.wait_applied(last).await;
    // A checkpoint of its own, which shares its tables through hard links.
    c.nodes[&3].trigger_snapshot().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while c.nodes[&3].status().snapshot.unwrap_or(0) < last {
        assert!(Instant::now() < deadline, "node 3 took no snapshot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old_dir = Path::new(SIM_DIR).join("engine/db-000001");
    let vote_before = c.nodes[&3].status().term;
    c.stop(3).await;

    let table = tables(&vfs, &old_dir).into_iter().next().expect("a table");
    let byte = vfs.read_all(&table).unwrap()[100];
    vfs.corrupt(&table, 100, &[byte ^ 0x04]).unwrap();

    let n3 = start_sim_node(&c, &vfs, port).await.unwrap();
    let damage = n3.state_machine().damage().clone();
    assert_eq!(damage.detected_total(), 1, "the start found the damage");
    assert_eq!(damage.repairs_total(), 1, "and repaired it before serving");
    assert!(n3.state_machine().damage_reason().is_none());
    assert!(
        !vfs.exists(&old_dir).unwrap(),
        "the damaged engine directory is gone"
    );
    // The term reaches the metrics once Raft's core has loaded the saved vote.
    let deadline = Instant::now() + WAIT;
    while n3.status().term < vote_before {
        assert!(Instant::now() < deadline, "the node kept its log and vote");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kept = n3.state_machine().checkpoints().list().unwrap();
    assert!(!kept.is_empty());
    for info in kept {
        qastore_lsm::checkpoint::verify(&vfs, &info.dir)
            .unwrap_or_else(|e| panic!("a damaged checkpoint was kept: {e}"));
    }
    c.insert(3, n3);
    assert_same_state(&c).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_engine_fails_while_running_refuses_reads_and_repairs_from_a_peer() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let vfs = SimVfs::new(32);
    let mut c = cluster_with_sim_node(&vfs, free_port()).await;
    let last = write_some(&c, 4, 20241202).await;
    c.wait_applied(last).await;

    // The disk under node 3's engine starts failing writes: its next flush fails and the
    // engine stops.
    vfs.inject(Fault::new(FaultOp::Write).path_contains("/n3/engine/db-000001/"));
    assert!(c.nodes[&3].flush().await.is_err());
    match c.nodes[&3].engine() {
        Err(Error::Damaged(reason)) => assert!(reason.contains("engine stopped"), "{reason}"),
        other => panic!("reads of the damaged state must be refused, got {other:?}"),
    }
    // Entries keep coming; the node replaces its engine and applies them.
    let more = write_some(&c, 3, 20241203).await;
    wait_repaired(&c.nodes[&3]).await;
    c.wait_applied(more).await;
    let damage = c.nodes[&3].state_machine().damage().clone();
    assert_eq!(damage.detected_total(), 1);
    assert_eq!(damage.repairs_total(), 1);
    assert!(c.nodes[&3].engine().is_ok());
    assert_same_state(&c).await;
    vfs.clear_faults();
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_with_a_damaged_table_refuses_to_start_naming_the_file_and_offset() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let vfs = SimVfs::new(33);
    let dir = Path::new("/solo");
    let cfg = config("solo", 1, dir, free_port());
    let node = ToyNode::start_with_vfs(cfg.clone(), vfs.shared())
        .await
        .unwrap();
    node.initialize(BTreeMap::from([(node.id(), node.peer_node())]))
        .await
        .unwrap();
    node.wait_for_leader(WAIT).await.unwrap();
    put_sized(&node, "solo", 4, ENTRY_BYTES).await;
    node.flush().await.unwrap();
    node.shutdown().await.unwrap();
    drop(node);
    let table = tables(&vfs, &dir.join("engine/db-000001"))
        .into_iter()
        .next()
        .expect("a table");
    let byte = vfs.read_all(&table).unwrap()[100];
    vfs.corrupt(&table, 100, &[byte ^ 0x04]).unwrap();

    let err = ToyNode::start_with_vfs(cfg, vfs.shared())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&table.display().to_string()), "{err}");
    assert!(err.contains("at byte 0"), "{err}");
    assert!(err.contains("refusing to start"), "{err}");
}
