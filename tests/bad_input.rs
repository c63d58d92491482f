//! Bad input over the wire: each request gets the right status code and a message naming the
//! field, and the cluster keeps serving with its data unchanged (the same state hash).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_testkit::requests::{hashes, orders_at, write_request};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::Code;

/// A message with the wire shape of nothing the API accepts: field 1 as a number where
/// `WriteRequest.client_id` is a string.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(uint64, tag = "1")]
    client_id: u64,
}

fn write(request_id: u64, records: Vec<pb::Record>) -> pb::WriteRequest {
    write_request("gw", request_id, records)
}

fn expect(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    let e = r.expect_err("the request was accepted");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(needle),
        "{needle:?} not in {:?}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "max_request_bytes = 1048576")
        .await
        .unwrap();
    let client = c.client().unwrap();
    let (leader, leader_api) = client.find_leader().await.unwrap();
    let mut store = client.store_at(&leader_api).unwrap();
    let first = store
        .write(write(1, vec![order("u1", "o1")]))
        .await
        .unwrap()
        .into_inner();
    let before = hashes(&client, &c.endpoints()).await.unwrap();

    // Malformed protobuf: gRPC's code for a request that does not parse.
    let channel = client.channel_at(&leader_api).unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let r = raw
        .unary::<Garbage, pb::WriteResponse, _>(
            tonic::Request::new(Garbage { client_id: 7 }),
            "/qastore.v1.Store/Write".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    expect(r, Code::Internal, "decode");

    // Unknown enum values.
    let mut bad_ack = write(2, vec![order("u1", "o2")]);
    bad_ack.ack = 9;
    expect(
        store.write(bad_ack).await,
        Code::InvalidArgument,
        "field ack",
    );
    let mut o = order("u1", "o3");
    if let Some(pb::record::Kind::OrderInsert(x)) = &mut o.kind {
        x.direction = 42;
    }
    expect(
        store.write(write(3, vec![order("u1", "ok"), o])).await,
        Code::InvalidArgument,
        "records[1].order_insert.direction",
    );
    expect(
        orders_at(
            &client,
            &leader_api,
            "u1",
            Some(pb::ReadOptions {
                consistency: 9,
                ..Default::default()
            }),
        )
        .await,
        Code::InvalidArgument,
        "read.consistency",
    );

    // Empty and oversized batches.
    expect(
        store.write(write(4, vec![])).await,
        Code::InvalidArgument,
        "field records",
    );
    let many: Vec<pb::Record> = (0..10_001).map(|i| order("u1", &format!("m{i}"))).collect();
    let e = store.write(write(5, many)).await.unwrap_err();
    assert!(
        matches!(
            e.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{e:?}"
    );
    let few: Vec<pb::Record> = (0..10_001)
        .map(|i| pb::Record {
            kind: Some(pb::record::Kind::OrderUpdate(pb::OrderUpdate {
                user_id: "u".into(),
                order_id: format!("{i}"),
                status: 1,
                volume_left: 0,
                last_msg: String::new(),
                time: 1,
            })),
        })
        .collect();
    expect(
        store.write(write(6, few)).await,
        Code::InvalidArgument,
        "limit",
    );

    // A record failing validation, empty ids.
    let mut nan = order("u1", "o4");
    if let Some(pb::record::Kind::OrderInsert(x)) = &mut nan.kind {
        x.limit_price = f64::NAN;
    }
    expect(
        store.write(write(7, vec![nan])).await,
        Code::InvalidArgument,
        "limit_price",
    );
    let mut no_client = write(8, vec![order("u1", "o5")]);
    no_client.client_id.clear();
    expect(
        store.write(no_client).await,
        Code::InvalidArgument,
        "client_id",
    );
    expect(
        store.write(write(0, vec![order("u1", "o5")])).await,
        Code::InvalidArgument,
        "request_id",
    );
    expect(
        orders_at(&client, &leader_api, "", None).await,
        Code::InvalidArgument,
        "user_id",
    );

    // A request id reused with another payload.
    expect(
        store.write(write(1, vec![order("u1", "other")])).await,
        Code::AlreadyExists,
        "request_id",
    );
    // ...while the true retry gets its first answer.
    let retry = store
        .write(write(1, vec![order("u1", "o1")]))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate);
    assert_eq!(retry.log_index, first.log_index);

    // A bogus leadership-transfer target, a backup outside the backup directory.
    let mut admin = client.admin_at(&leader_api).unwrap();
    expect(
        admin
            .transfer_leadership(pb::TransferLeadershipRequest {
                to_node_id: 99,
                wait_ms: 0,
            })
            .await,
        Code::InvalidArgument,
        "to_node_id",
    );
    expect(
        admin
            .backup(pb::BackupRequest {
                name: "../../etc".into(),
            })
            .await,
        Code::InvalidArgument,
        "field name",
    );
    let out = c.ctl(&["transfer-leader", "--to", "99"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("to_node_id"), "{err}");
    let out = c
        .ctl(&["backup", "--name", "/tmp/x", "--node", &leader_api])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("field name"));

    // A bad write sent to a follower goes to the leader as it came: the leader's refusal,
    // naming the record and field, reaches the client.
    let follower = c.others(leader)[0];
    let mut via_follower = client.store_at(&c.api(follower)).unwrap();
    let mut o = order("u1", "o7");
    if let Some(pb::record::Kind::OrderInsert(x)) = &mut o.kind {
        x.direction = 42;
    }
    expect(
        via_follower
            .write(write(10, vec![order("u1", "ok"), o]))
            .await,
        Code::InvalidArgument,
        "records[1].order_insert.direction",
    );
    let (_, page) = c.http_get(follower, "/metrics").unwrap();
    let forwarded = page
        .lines()
        .find_map(|l| l.strip_prefix("qastore_writes_forwarded_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(forwarded, Some(1.0), "{page}");

    // Nothing changed, and every node still serves.
    let after = hashes(&client, &c.endpoints()).await.unwrap();
    assert_eq!(before, after);
    assert!(after.windows(2).all(|w| w[0] == w[1]));

    // A write to a removed node.
    let removed = c.others(leader)[0];
    let out = c
        .ctl(&["remove", "--id", &removed.to_string()])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut gone = client.store_at(&c.api(removed)).unwrap();
    expect(
        gone.write(write(9, vec![order("u1", "o6")])).await,
        Code::FailedPrecondition,
        "not a member",
    );
    let rest: Vec<String> = c.others(removed).iter().map(|id| c.api(*id)).collect();
    let r = orders_at(&client, &rest[0], "u1", None).await.unwrap();
    assert_eq!(r.orders.len(), 1, "only the first good write is there");
    let after = hashes(&client, &rest).await.unwrap();
    assert_eq!(after[0], before[0]);
}

/// A config with a bad storage setting or an unknown key stops `serve` before it touches the data
/// directory, with one line naming the key.
#[test]
fn a_bad_storage_config_is_refused_in_one_line_before_touching_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (section, key) in [
        (
            "[engine]\nl0_slowdown_trigger = 20\nl0_stop_trigger = 10",
            "engine.l0_stop_trigger",
        ),
        ("[wal]\nsegment_bytes = 0", "wal.segment_bytes"),
        ("[engine]\nmemtable_size = 1", "memtable_size"),
    ] {
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "node_id = 1\ndata_dir = {:?}\n{section}\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_qastore"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(key), "{err}");
        assert!(!data.exists(), "{section}");
    }
}
