//! `Store.WriteStream` over real processes: many writes on one stream through a follower, each
//! answered under its own tag with the outcome a unary `Write` would give (forwarded to the
//! leader, refused for bad input naming the field, a retry answered as a duplicate), the
//! answers of writes still in flight delivered after the caller closed its side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_testkit::requests::{orders_at, write_request};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::Code;

fn write(request_id: u64, records: Vec<pb::Record>) -> pb::WriteRequest {
    write_request("stream-gw", request_id, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_many_writes_each_answered_under_its_tag_with_its_own_outcome() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let (leader, leader_api) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = c.api(c.others(leader)[0]);
    let client = c.client().unwrap();

    let mut messages: Vec<pb::StreamedWrite> = (1..=20u64)
        .map(|n| pb::StreamedWrite {
            tag: n,
            write: Some(write(n, vec![order("us1", &format!("o{n}"))])),
            timeout_ms: 5_000,
        })
        .collect();
    // Bad input: an order without its user.
    messages.push(pb::StreamedWrite {
        tag: 21,
        write: Some(write(21, vec![order("", "o21")])),
        timeout_ms: 0,
    });
    // No write at all.
    messages.push(pb::StreamedWrite {
        tag: 22,
        write: None,
        timeout_ms: 0,
    });
    // The same write as tag 1, sent again: applied once.
    messages.push(pb::StreamedWrite {
        tag: 23,
        write: Some(write(1, vec![order("us1", "o1")])),
        timeout_ms: 0,
    });

    let mut store = client.store_at(&follower).unwrap();
    // The caller's side ends after the last write; every answer must still come.
    let mut answers = store
        .write_stream(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let mut by_tag = HashMap::new();
    while let Some(a) = tokio::time::timeout(Duration::from_secs(20), answers.message())
        .await
        .expect("every write is answered")
        .unwrap()
    {
        assert!(by_tag.insert(a.tag, a).is_none(), "one answer per tag");
    }
    assert_eq!(by_tag.len(), 23, "{:?}", by_tag.keys());

    let written = |tag: u64| match &by_tag[&tag].outcome {
        Some(pb::streamed_write_answer::Outcome::Written(w)) => w.clone(),
        other => panic!("tag {tag}: {other:?}"),
    };
    let failed = |tag: u64| match &by_tag[&tag].outcome {
        Some(pb::streamed_write_answer::Outcome::Failed(f)) => f.to_status(),
        other => panic!("tag {tag}: {other:?}"),
    };
    for tag in 2..=20 {
        let w = written(tag);
        assert_eq!(w.leader_id, leader);
        assert_eq!(w.results.len(), 1);
        assert_eq!(w.results[0].outcome, pb::Outcome::OrderInserted as i32);
        // The follower passed it on and says where the leader is.
        assert_eq!(by_tag[&tag].leader_hint, leader_api);
    }
    let bad = failed(21);
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("user_id"), "{}", bad.message());
    let empty = failed(22);
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    assert!(
        empty.message().contains("field write"),
        "{}",
        empty.message()
    );
    // Tag 1 and its repeat: one applied, the other answered as its duplicate.
    let (first, again) = (written(1), written(23));
    assert_eq!(first.log_index, again.log_index);
    assert_eq!(first.results, again.results);
    assert!(first.duplicate != again.duplicate, "{first:?} {again:?}");

    // Twenty orders, none from the refused writes.
    let r = orders_at(&client, &leader_api, "us1", None).await.unwrap();
    assert_eq!(r.orders.len(), 20);
}
