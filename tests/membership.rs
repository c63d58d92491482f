//! Membership changes with real `qastore serve` processes: a learner counts as caught up only
//! once it has applied what the leader had, and a removed node refuses every read and write
//! and says it was removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use qastore_client::Client;
use qastore_proto::v1 as pb;
use qastore_testkit::requests::{orders_at, read};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::Code;

/// Adds node `id` (already started) as a learner, waiting up to `wait_ms` for it to catch up.
async fn add_learner(c: &ProcCluster, id: u64, wait_ms: u64) -> std::process::Output {
    let n = &c.nodes[&id];
    c.ctl(&[
        "add-learner",
        "--id",
        &id.to_string(),
        "--raft",
        &n.raft.to_string(),
        "--api",
        &n.api.to_string(),
        "--wait-ms",
        &wait_ms.to_string(),
    ])
    .await
    .unwrap()
}

async fn node_status(client: &Client, addr: &str) -> pb::NodeStatus {
    client
        .admin_at(addr)
        .unwrap()
        .get_node_status(client.request(pb::NodeStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// `ctl` pointed at one node only.
async fn ctl_at(c: &ProcCluster, addr: String, args: &[&str]) -> std::process::Output {
    let mut cmd = c.ctl_command(&addr);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn expect_not_member<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), Code::FailedPrecondition, "{what}: {e:?}");
    assert!(
        e.message().contains("not a member") && e.message().contains("removed"),
        "{what}: {}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_refuses_reads_and_writes_and_says_it_was_removed() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let client = c.client().unwrap();
    client
        .write(vec![order("u1", "o1")], pb::AckLevel::All)
        .await
        .unwrap();
    c.prepare_joiner(4, "").unwrap();
    c.spawn(4, false).unwrap();
    c.wait_up(4).await.unwrap();
    let out = add_learner(&c, 4, 20_000).await;
    assert!(out.status.success(), "{out:?}");
    let out = c.ctl(&["promote", "--id", "4"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let w = client
        .write(vec![order("u1", "o2")], pb::AckLevel::All)
        .await
        .unwrap();
    let four = c.api(4);
    let served = orders_at(
        &client,
        &four,
        "u1",
        read(pb::Consistency::Local, 0, w.log_index),
    )
    .await
    .unwrap();
    assert_eq!(served.orders.len(), 2, "node 4 serves while it is a member");

    let out = c.ctl(&["remove", "--id", "4"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    // A linearizable read sent at once waits for entries that never reach node 4: it must end
    // with the removal, not with its deadline.
    let in_flight = {
        let (reader, four) = (c.client().unwrap(), four.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = orders_at(
                &reader,
                &four,
                "u1",
                read(pb::Consistency::Linearizable, 0, 0),
            )
            .await;
            (r, started.elapsed())
        })
    };
    // The rest of the cluster moves on without it.
    client
        .write(vec![order("u1", "o3")], pb::AckLevel::All)
        .await
        .unwrap();

    // Within a few election timeouts it finds out, even if the entry removing it never came.
    let started = Instant::now();
    loop {
        let r = orders_at(&client, &four, "u1", read(pb::Consistency::Local, 0, 0)).await;
        match r {
            Err(e) if e.code() == Code::FailedPrecondition => break,
            other => assert!(
                started.elapsed() < Duration::from_secs(15),
                "node 4 still serves local reads after its removal: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (r, took) = in_flight.await.unwrap();
    expect_not_member("a linearizable read in flight", r);
    assert!(took < Duration::from_secs(5), "it took {took:?}");
    for (what, options) in [
        ("local read", read(pb::Consistency::Local, 0, 0)),
        ("bounded read", read(pb::Consistency::Bounded, 60_000, 0)),
        (
            "linearizable read",
            read(pb::Consistency::Linearizable, 0, 0),
        ),
    ] {
        expect_not_member(what, orders_at(&client, &four, "u1", options).await);
    }
    let mut store = client.store_at(&four).unwrap();
    let write = store
        .write(client.request(pb::WriteRequest {
            client_id: "gw".into(),
            request_id: 99,
            records: vec![order("u1", "o4")],
            ack: pb::AckLevel::Quorum as i32,
        }))
        .await;
    expect_not_member("write", write);

    // It says what it is: in its status, in `ctl status` and on /readyz and /metrics.
    let st = node_status(&client, &four).await;
    assert_eq!(st.role, pb::Role::Removed as i32, "{st:?}");
    let out = ctl_at(&c, four.clone(), &["status", "--output", "json"]).await;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["node_id"] == 4)
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["status"]["role"], "removed", "{v}");
    let (code, body) = c.http_get(4, "/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("removed"), "{body}");
    let (_, metrics) = c.http_get(4, "/metrics").unwrap();
    assert!(metrics.contains("qastore_raft_is_member 0"), "{metrics}");

    // Restarted, it remembers: its first read is refused, before it could ask anyone again.
    c.kill(4).unwrap();
    c.spawn(4, false).unwrap();
    c.wait_up(4).await.unwrap();
    expect_not_member(
        "a local read right after a restart",
        orders_at(&client, &four, "u1", read(pb::Consistency::Local, 0, 0)).await,
    );

    // The members left serve everything, node 4's last write included.
    let rest = c.api(c.wait_leader(Duration::from_secs(10)).await.unwrap().0);
    let r = orders_at(&client, &rest, "u1", None).await.unwrap();
    assert_eq!(r.orders.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_returns_once_the_learner_has_applied_what_the_leader_had() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let client = std::sync::Arc::new(c.client().unwrap());
    // Enough entries that a learner holds the log well before it has applied it.
    let mut writes = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        writes.push(tokio::spawn(async move {
            for b in 0..40 {
                let batch: Vec<pb::Record> = (0..1000)
                    .map(|i| order(&format!("u{w}"), &format!("o{b}-{i}")))
                    .collect();
                client.write(batch, pb::AckLevel::Quorum).await.unwrap();
            }
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let (_, leader) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let committed = node_status(&client, &leader).await.committed_index.unwrap();
    c.prepare_joiner(4, "").unwrap();
    c.spawn(4, false).unwrap();
    c.wait_up(4).await.unwrap();
    let out = add_learner(&c, 4, 120_000).await;
    assert!(out.status.success(), "{out:?}\n{}", c.logs());
    let st = node_status(&client, &c.api(4)).await;
    let applied = st.applied_index.unwrap_or(0);
    assert!(
        applied >= committed,
        "add-learner returned with the learner at applied {applied} of {committed}"
    );
}
