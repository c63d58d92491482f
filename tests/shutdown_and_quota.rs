//! SIGTERM stops a node cleanly and it restarts with its data; a node over its disk quota
//! refuses writes with RESOURCE_EXHAUSTED and raises its alarm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_testkit::requests::{orders_at, read};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_cleanly_and_it_restarts_with_its_data() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let client = c.client().unwrap();
    let mut last = 0;
    for i in 0..30 {
        last = client
            .write(vec![order("u9", &format!("o{i}"))], pb::AckLevel::All)
            .await
            .unwrap()
            .log_index;
    }
    let (leader, _) = c.wait_leader(Duration::from_secs(5)).await.unwrap();
    for id in [c.others(leader)[0], leader] {
        let status = c.terminate(id).unwrap();
        assert!(status.success(), "node {id} ended with {status}");
        c.spawn(id, false).unwrap();
        c.wait_up(id).await.unwrap();
        c.wait_leader(Duration::from_secs(20)).await.unwrap();
        let r = orders_at(
            &client,
            &c.api(id),
            "u9",
            read(pb::Consistency::Local, 0, last),
        )
        .await
        .unwrap();
        assert_eq!(r.orders.len(), 30, "node {id} after its restart");
    }
    let log = std::fs::read_to_string(&c.nodes[&leader].log).unwrap();
    assert!(
        log.contains("SIGTERM received") && log.contains("node stopped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_its_disk_quota_refuses_writes() {
    let _serial = SERIAL.lock().await;
    // The data directory holds more than 4 KiB as soon as it exists.
    let c = ProcCluster::start(1, "disk_quota_bytes = 4096")
        .await
        .unwrap();
    let client = c.client().unwrap();
    let mut store = client.store_at(&c.api(1)).unwrap();
    let e = store
        .write(pb::WriteRequest {
            client_id: "gw".into(),
            request_id: 1,
            records: vec![order("u1", "o1")],
            ack: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("disk quota"), "{}", e.message());
    // Reads still work, and the alarm shows.
    assert!(orders_at(&client, &c.api(1), "u1", None).await.is_ok());
    let (_, metrics) = c.http_get(1, "/metrics").unwrap();
    let (_, storage) = c.http_get(1, "/admin/storage").unwrap();
    let v: serde_json::Value = serde_json::from_str(&storage).unwrap();
    assert_eq!(v["disk_alarm"], true, "{storage}\n{metrics}");
}
