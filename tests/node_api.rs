//! The node's API over real processes: writes through a follower, reads at every consistency
//! from followers, read-your-writes, bounded reads refused on a cut-off node, retries across a
//! leader's death applied once, the ingestor under a full queue, `ctl status`, and the HTTP
//! health and metrics routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_client::{Client, Ingestor, IngestorConfig, SubmitError};
use qastore_proto::v1 as pb;
use qastore_testkit::requests::{orders_at, read};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_read_back_from_the_followers_at_every_consistency() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let f = c.others(leader);
    // A client that only knows one follower: the follower forwards the write.
    let via_follower = Client::new(&[c.api(f[0])], c.client_config()).unwrap();
    let mut store = via_follower.store_at(&c.api(f[0])).unwrap();
    let w = store
        .write(pb::WriteRequest {
            client_id: "gw".into(),
            request_id: 1,
            records: vec![order("u1", "o1")],
            ack: pb::AckLevel::Quorum as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.leader_id, leader);
    assert_eq!(w.results[0].outcome, pb::Outcome::OrderInserted as i32);

    let client = c.client().unwrap();
    for (addr, options) in [
        (c.api(f[1]), read(pb::Consistency::Linearizable, 0, 0)),
        (c.api(f[0]), None),
        (
            c.api(f[1]),
            read(pb::Consistency::Bounded, 5_000, w.log_index),
        ),
        (c.api(f[0]), read(pb::Consistency::Local, 0, w.log_index)),
    ] {
        let r = orders_at(&client, &addr, "u1", options).await.unwrap();
        assert_eq!(r.orders.len(), 1, "{addr} {options:?}");
        let served = r.served_by.unwrap();
        assert_ne!(served.node_id, leader, "served by a follower");
        assert!(served.applied_index >= w.log_index);
    }
    // A bounded read without a bound is a bad request.
    let e = orders_at(
        &client,
        &c.api(f[0]),
        "u1",
        read(pb::Consistency::Bounded, 0, 0),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("max_staleness_ms"), "{}", e.message());

    // A client that knows every node learns the leader from the first forwarded answer and
    // writes there from then on; one that knows only the follower keeps writing through it.
    let everyone = [c.api(f[0]), c.api(leader), c.api(f[1])];
    let everyone = Client::new(&everyone, c.client_config()).unwrap();
    let mut k = 0;
    for (client, n) in [(&everyone, 4), (&via_follower, 2)] {
        for _ in 0..n {
            k += 1;
            let r = client.write(vec![order("u2", &format!("o{k}"))], pb::AckLevel::Quorum);
            r.await.unwrap();
        }
    }
    let (_, page) = c.http_get(f[0], "/metrics").unwrap();
    let forwarded = page
        .lines()
        .find_map(|l| l.strip_prefix("qastore_writes_forwarded_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(forwarded, Some(1.0 + 1.0 + 2.0), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_its_leader_refuses_bounded_reads_and_is_not_ready_but_live() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let client = c.client().unwrap();
    let w = client
        .write(vec![order("u2", "o1")], pb::AckLevel::All)
        .await
        .unwrap();
    let lonely = c.others(leader)[0];
    let addr = c.api(lonely);
    assert!(orders_at(
        &client,
        &addr,
        "u2",
        read(pb::Consistency::Bounded, 2_000, w.log_index)
    )
    .await
    .is_ok());
    let (code, _) = c.http_get(lonely, "/readyz").unwrap();
    assert_eq!(code, 200);

    // Freeze the other two: to this node it is a partition.
    for id in c.others(lonely) {
        c.pause(id, true).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let e = orders_at(&client, &addr, "u2", read(pb::Consistency::Bounded, 500, 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("stale") || e.message().contains("cannot tell"),
        "{}",
        e.message()
    );
    let local = orders_at(&client, &addr, "u2", read(pb::Consistency::Local, 0, 0))
        .await
        .unwrap();
    assert_eq!(local.orders.len(), 1);
    assert_eq!(c.http_get(lonely, "/livez").unwrap().0, 200);
    let (code, body) = c.http_get(lonely, "/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    for id in c.others(lonely) {
        c.pause(id, false).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_retried_after_the_leader_dies_is_applied_once() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let client = c.client().unwrap();
    let batch = vec![order("u3", "o1"), order("u3", "o2")];
    let (first, _) = client
        .write_with_id(77, batch.clone(), pb::AckLevel::All)
        .await
        .unwrap();
    assert!(!first.duplicate);
    c.kill(leader).unwrap();
    // The client finds the new leader and retries under the same request id.
    let (again, _) = client
        .write_with_id(77, batch, pb::AckLevel::Quorum)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.log_index, first.log_index);
    assert_eq!(again.results, first.results);
    let (_, new_leader) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let r = orders_at(&client, &new_leader, "u3", None).await.unwrap();
    assert_eq!(r.orders.len(), 2);
    // The same request id with another payload is refused.
    let e = client
        .write_with_id(77, vec![order("u3", "o9")], pb::AckLevel::Quorum)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::AlreadyExists), "{e}");
    assert!(e.to_string().contains("request_id"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ingest_queue_refuses_at_once_and_everything_accepted_is_written() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let client = std::sync::Arc::new(c.client().unwrap());
    let ingestor = Ingestor::start(
        client.clone(),
        IngestorConfig {
            queue_capacity: 64,
            max_batch_records: 16,
            ..IngestorConfig::default()
        },
    );
    let mut accepted = Vec::new();
    let mut full = 0;
    // Submitting flat out, without yielding, outruns any cluster: the queue fills.
    for i in 0..5_000 {
        match ingestor.submit(order("u4", &format!("o{i}"))) {
            Ok(done) => accepted.push(done),
            Err(SubmitError::QueueFull) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full > 0, "the queue never filled");
    let n = accepted.len() as u64;
    for done in accepted {
        let ack = done.await.unwrap().unwrap();
        assert_eq!(ack.result.outcome, pb::Outcome::OrderInserted as i32);
    }
    let stats = ingestor.close().await;
    assert_eq!(stats.submitted, n);
    assert_eq!(stats.written, n);
    assert_eq!(stats.rejected, full);
    assert_eq!(stats.in_flight, 0);
    assert!(stats.batches >= n / 16);
    let (_, leader) = c.wait_leader(Duration::from_secs(5)).await.unwrap();
    let r = orders_at(&client, &leader, "u4", None).await.unwrap();
    assert_eq!(r.orders.len() as u64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_status_lists_every_member_and_the_http_port_serves_metrics() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    c.client()
        .unwrap()
        .write(vec![order("u5", "o1")], pb::AckLevel::All)
        .await
        .unwrap();
    let out = c.ctl(&["status"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    // A header and a row per member: no warning on a cluster running mutual TLS with
    // certificates far from expiry.
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table.contains("leader") && table.contains("follower"),
        "{table}"
    );
    let out = c.ctl(&["status", "--output", "json"]).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["leader_id"], leader);
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        assert!(m["status"]["applied_index"].as_u64().unwrap() > 0, "{m}");
    }
    for id in 1..=3 {
        assert_eq!(c.http_get(id, "/livez").unwrap().0, 200);
        assert_eq!(c.http_get(id, "/readyz").unwrap().0, 200);
        // The sampler refreshes the gauges every second.
        let mut metrics = String::new();
        for _ in 0..30 {
            let (code, m) = c.http_get(id, "/metrics").unwrap();
            assert_eq!(code, 200);
            metrics = m;
            if metrics.contains("qastore_raft_has_leader 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for name in [
            "qastore_raft_term",
            "qastore_raft_has_leader 1",
            "qastore_raft_apply_index",
            "qastore_wal_fsync_seconds_bucket",
            "qastore_memtable_bytes",
        ] {
            assert!(metrics.contains(name), "node {id} lacks {name}:\n{metrics}");
        }
        let (code, status) = c.http_get(id, "/admin/status").unwrap();
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["node"]["node_id"], id);
    }
    let (code, _) = c.http_get(leader, "/metrics").unwrap();
    assert_eq!(code, 200);
    let (code, metrics) = c.http_get(leader, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("qastore_rpc_seconds"), "{metrics}");
    let (code, body) = c.http_post(leader, "/admin/compaction").unwrap();
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_forwarding_a_follower_names_the_leader_and_the_client_follows() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "forward_writes = false")
        .await
        .unwrap();
    let (leader, leader_api) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = c.api(c.others(leader)[0]);
    let client = c.client().unwrap();
    let mut store = client.store_at(&follower).unwrap();
    let e = store
        .write(pb::WriteRequest {
            client_id: "gw".into(),
            request_id: 5,
            records: vec![order("u6", "o1")],
            ack: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains(&leader_api), "{}", e.message());
    assert_eq!(
        e.metadata()
            .get(qastore_proto::api_metadata::LEADER)
            .unwrap()
            .to_str()
            .unwrap(),
        leader_api
    );
    // The client library follows the hint.
    let only_follower = Client::new(&[follower], c.client_config()).unwrap();
    let w = only_follower
        .write(vec![order("u6", "o2")], pb::AckLevel::Quorum)
        .await
        .unwrap();
    assert_eq!(w.leader_id, leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_arrive_together_share_entries_and_each_keeps_its_own_answer() {
    let _serial = SERIAL.lock().await;
    // One entry of writes on its way at a time: whatever arrives meanwhile is grouped.
    let c = ProcCluster::start(3, "write_groups_in_flight = 1")
        .await
        .unwrap();
    let (_, leader_api) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let client = c.client().unwrap();
    let request = |n: usize| pb::WriteRequest {
        client_id: format!("gw-{}", n % 8),
        request_id: 1 + n as u64 / 8,
        records: vec![order("u9", &format!("o{n}"))],
        ack: pb::AckLevel::Quorum as i32,
    };
    let mut calls = Vec::new();
    for n in 0..64 {
        let mut store = client.store_at(&leader_api).unwrap();
        let req = request(n);
        calls.push(tokio::spawn(async move {
            store.write(req).await.map(|r| r.into_inner())
        }));
    }
    let mut indexes = std::collections::BTreeSet::new();
    let mut answers = Vec::new();
    for call in calls {
        let w = call.await.unwrap().unwrap();
        assert!(!w.duplicate);
        assert_eq!(w.results.len(), 1);
        assert_eq!(w.results[0].outcome, pb::Outcome::OrderInserted as i32);
        indexes.insert(w.log_index);
        answers.push(w);
    }
    assert!(
        indexes.len() < 64,
        "64 writes at once on a leader with one entry in flight share entries: {indexes:?}"
    );
    let r = orders_at(&client, &leader_api, "u9", None).await.unwrap();
    assert_eq!(r.orders.len(), 64);
    // A retry of any of them is answered as the write it repeats, at its group's index.
    for n in [0, 31, 63] {
        let mut store = client.store_at(&leader_api).unwrap();
        let again = store.write(request(n)).await.unwrap().into_inner();
        assert!(again.duplicate, "write {n}");
        assert_eq!(again.log_index, answers[n].log_index, "write {n}");
    }
    let (code, metrics) = c
        .http_get(
            c.wait_leader(Duration::from_secs(5)).await.unwrap().0,
            "/metrics",
        )
        .unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("qastore_write_groups_total"), "{metrics}");
}
