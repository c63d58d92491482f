//! Quorum lost for good: the survivor refuses writes (UNAVAILABLE) until an operator restarts
//! it with `--force-new-cluster`, after which it alone forms the cluster with all its data
//! and takes writes again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_client::Client;
use qastore_proto::v1 as pb;
use qastore_testkit::requests::orders_at;
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_of_a_lost_quorum_recovers_only_with_force_new_cluster() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let client = c.client().unwrap();
    for i in 0..10 {
        client
            .write(vec![order("u1", &format!("o{i}"))], pb::AckLevel::All)
            .await
            .unwrap();
    }
    let (leader, _) = c.wait_leader(Duration::from_secs(5)).await.unwrap();
    let survivor = c.others(leader)[0];
    for id in c.others(survivor) {
        c.kill(id).unwrap();
    }
    let api = c.api(survivor);
    let mut store = client.store_at(&api).unwrap();
    let req = |id| pb::WriteRequest {
        client_id: "gw".into(),
        request_id: id,
        records: vec![order("u1", "late")],
        ack: 0,
    };
    let e = store.write(req(100)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.metadata()
            .get(qastore_proto::api_metadata::RETRY_AFTER_MS)
            .is_some(),
        "a retry hint: {e:?}"
    );

    // Restarting it normally changes nothing: still no quorum.
    c.kill(survivor).unwrap();
    c.spawn(survivor, false).unwrap();
    c.wait_up(survivor).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let e = store.write(req(101)).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{e:?}"
    );

    // The explicit recovery.
    c.kill(survivor).unwrap();
    c.spawn_with(survivor, &["--force-new-cluster"]).unwrap();
    c.wait_up(survivor).await.unwrap();
    let alone = Client::new(std::slice::from_ref(&api), c.client_config()).unwrap();
    let mut now = None;
    for _ in 0..100 {
        if let Ok((l, _)) = alone.find_leader().await {
            now = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(now, Some(survivor), "logs in {}", c.dir().display());
    let members = alone
        .admin_at(&api)
        .unwrap()
        .members(pb::MembersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    alone
        .write(vec![order("u1", "after")], pb::AckLevel::All)
        .await
        .unwrap();
    let r = orders_at(&alone, &api, "u1", None).await.unwrap();
    assert_eq!(
        r.orders.len(),
        11,
        "all ten acknowledged orders and the new one"
    );
}
