//! A backup taken with `ctl backup` and restored with `ctl restore` starts a new cluster that
//! holds the same data (the same state hash), and grows by adding a learner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_testkit::requests::{hashes, orders_at};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_starts_a_new_cluster_with_the_same_state_hash() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let client = c.client().unwrap();
    for i in 0..20 {
        client
            .write(
                vec![order("u7", &format!("o{i}")), order("u8", &format!("o{i}"))],
                pb::AckLevel::All,
            )
            .await
            .unwrap();
    }
    let original = hashes(&client, &c.endpoints()).await.unwrap();
    assert!(original.windows(2).all(|w| w[0] == w[1]), "{original:?}");

    let (_, leader) = c.wait_leader(Duration::from_secs(5)).await.unwrap();
    let out = c
        .ctl(&[
            "backup", "--name", "b1", "--node", &leader, "--output", "json",
        ])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = b["path"].as_str().unwrap().to_string();
    assert!(b["files"].as_u64().unwrap() > 0);

    // A new cluster of one node, from the backup.
    let mut restored = ProcCluster::prepare(2, "restored", "", 1).unwrap();
    let config = restored.nodes[&1].config.clone();
    let out = restored
        .ctl(&[
            "restore",
            "--backup",
            &path,
            "--config",
            config.to_str().unwrap(),
        ])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Restoring twice into the same directory is refused.
    let again = restored
        .ctl(&[
            "restore",
            "--backup",
            &path,
            "--config",
            config.to_str().unwrap(),
        ])
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    restored.spawn(1, false).unwrap();
    restored.wait_up(1).await.unwrap();
    let rc = restored.client().unwrap();
    restored.wait_leader(Duration::from_secs(20)).await.unwrap();
    let one = vec![restored.api(1)];
    let h = hashes(&rc, &one).await.unwrap();
    assert_eq!(h[0], original[0], "the restored state differs");
    let r = orders_at(&rc, &restored.api(1), "u7", None).await.unwrap();
    assert_eq!(r.orders.len(), 20);

    // It grows: a second node joins as a learner and is promoted.
    restored.spawn(2, false).unwrap();
    restored.wait_up(2).await.unwrap();
    let n2 = &restored.nodes[&2];
    let out = restored
        .ctl(&[
            "add-learner",
            "--id",
            "2",
            "--raft",
            &n2.raft.to_string(),
            "--api",
            &n2.api.to_string(),
            "--wait-ms",
            "20000",
        ])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = restored.ctl(&["promote", "--id", "2"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    rc.write(vec![order("u7", "after")], pb::AckLevel::All)
        .await
        .unwrap();
    let both = hashes(&rc, &restored.endpoints()).await.unwrap();
    assert_eq!(both[0], both[1]);
}
