//! A follower started with a flipped byte in one of its tables notices at once, says so in its
//! log, replaces its engine with a checkpoint from a peer (keeping its log and identity), and
//! ends up ready with the leader's state hash; a lone node with the same damage refuses to
//! start, naming the file and offset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qastore_proto::v1 as pb;
use qastore_testkit::requests::hashes;
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};

/// The tables of the node's live engine directory (`engine/db-NNNNNN`).
fn tables(data: &Path) -> Vec<PathBuf> {
    let active = std::fs::read_to_string(data.join("engine/ACTIVE")).unwrap();
    let dir = data.join("engine").join(active.trim_end());
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    out.sort();
    out
}

/// Flips one byte inside the first data block of `table`; returns its offset.
fn flip_a_data_byte(table: &Path) -> usize {
    let mut bytes = std::fs::read(table).unwrap();
    let at = 100.min(bytes.len() / 4);
    bytes[at] ^= 0x10;
    std::fs::write(table, &bytes).unwrap();
    at
}

async fn write_orders(c: &ProcCluster, tag: &str, n: usize) {
    let client = c.client().unwrap();
    for i in 0..n {
        client
            .write(
                vec![
                    order("u7", &format!("{tag}{i}")),
                    order("u8", &format!("{tag}{i}")),
                ],
                pb::AckLevel::All,
            )
            .await
            .unwrap();
    }
}

/// Puts everything the node applied into tables.
async fn compact(c: &ProcCluster, id: u64) {
    let client = c.client().unwrap();
    client
        .admin_at(&c.api(id))
        .unwrap()
        .trigger_compaction(client.request(pb::TriggerCompactionRequest {}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_started_with_a_flipped_table_byte_repairs_itself_from_the_leader() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    write_orders(&c, "a", 30).await;
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = c.others(leader)[0];
    compact(&c, follower).await;
    assert!(c.terminate(follower).unwrap().success());

    let data = c.nodes[&follower].data.clone();
    let damaged = tables(&data);
    assert!(!damaged.is_empty(), "the follower has tables");
    flip_a_data_byte(&damaged[0]);

    c.spawn(follower, false).unwrap();
    c.wait_up(follower).await.unwrap();
    // Ready again once repaired, with a new engine directory and none of the damaged files.
    let started = Instant::now();
    loop {
        let (code, body) = c.http_get(follower, "/readyz").unwrap();
        if code == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the follower never became ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!damaged[0].exists(), "the damaged table is gone");
    let log = std::fs::read_to_string(&c.nodes[&follower].log).unwrap();
    assert!(log.contains("engine is damaged"), "the log says so");
    assert!(log.contains("block checksum mismatch"), "naming the damage");
    assert!(
        log.contains("replaced by a snapshot from a peer"),
        "and the repair"
    );
    let (_, metrics) = c.http_get(follower, "/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("qastore_engine_repairs_total") && l.ends_with(" 1")),
        "{metrics}"
    );

    // It applies again, and holds what the leader holds.
    write_orders(&c, "b", 10).await;
    let client = c.client().unwrap();
    let h = hashes(&client, &c.endpoints()).await.unwrap();
    assert!(h.windows(2).all(|w| w[0] == w[1]), "{h:?}");
    let out = c.ctl(&["status"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_started_with_a_flipped_table_byte_refuses_to_start() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(1, "").await.unwrap();
    write_orders(&c, "a", 20).await;
    compact(&c, 1).await;
    assert!(c.terminate(1).unwrap().success());
    let table = tables(&c.nodes[&1].data)[0].clone();
    flip_a_data_byte(&table);

    c.spawn(1, false).unwrap();
    let status = c
        .reap(1, Duration::from_secs(30))
        .unwrap()
        .expect("the node refuses to start");
    assert!(!status.success());
    let log = std::fs::read_to_string(&c.nodes[&1].log).unwrap();
    assert!(log.contains(&table.display().to_string()), "{log}");
    assert!(log.contains("at byte 0"), "{log}");
    assert!(log.contains("refusing to start"), "{log}");
}
