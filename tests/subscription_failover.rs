//! Subscriptions against real node processes: a subscriber on a follower keeps its stream when
//! that follower is killed or falls silent mid-stream (the stream goes on on another node,
//! with no event lost or repeated), and `qastore ctl subscribe --limit N --output json` prints the first N
//! committed events as JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use qastore_client::{Client, ClientConfig, Start, SubscribeOptions, SubscriptionItem};
use qastore_proto::v1 as pb;
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};

fn key(p: &Option<pb::Position>) -> (u64, u32) {
    let p = p.unwrap();
    (p.log_index, p.ordinal)
}

/// A client that reaches the nodes in exactly this order.
fn client_of(c: &ProcCluster, endpoints: Vec<String>) -> Client {
    Client::new(
        &endpoints,
        ClientConfig {
            client_id: "subscriber".into(),
            call_timeout: Duration::from_secs(2),
            ..c.client_config()
        },
    )
    .unwrap()
}

/// Reads events from `stream` until one at or after `last`, failing after `within`.
async fn events_through(
    stream: &mut qastore_client::Subscription,
    last: (u64, u32),
    within: Duration,
) -> Vec<pb::Event> {
    let mut events = Vec::new();
    tokio::time::timeout(within, async {
        while let Some(item) = stream.next().await {
            if let SubscriptionItem::Event(e) = item.unwrap() {
                let at = key(&e.position);
                events.push(e);
                if at >= last {
                    return;
                }
            }
        }
        panic!("the subscription ended");
    })
    .await
    .unwrap_or_else(|_| panic!("not all events within {within:?}; got {}", events.len()));
    events
}

/// How the follower serving the subscriber fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Its process is killed (SIGKILL): the connection breaks.
    Kill,
    /// Its process is stopped (SIGSTOP): the connection stays open and goes silent.
    Pause,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_on_a_killed_follower_goes_on_elsewhere_without_gap_or_repeat() {
    let _serial = SERIAL.lock().await;
    follower_fails_under_a_subscriber(Failure::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_whose_follower_falls_silent_moves_on_after_three_heartbeats() {
    let _serial = SERIAL.lock().await;
    follower_fails_under_a_subscriber(Failure::Pause).await;
}

/// A subscriber reads orders from the oldest on a follower while orders keep being written;
/// the follower fails; the subscriber must go on on another node and see exactly the
/// committed orders, each once, in position order.
async fn follower_fails_under_a_subscriber(failure: Failure) {
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let followers = c.others(leader);
    let victim = followers[0];
    for &f in &followers {
        c.wait_up(f).await.unwrap();
    }
    // The victim first: with followers preferred, the stream starts there.
    let endpoints = vec![c.api(victim), c.api(followers[1]), c.api(leader)];
    let subscriber = client_of(&c, endpoints.clone());
    let mut stream = subscriber.subscribe(
        SubscribeOptions::new()
            .kinds([pb::RecordKind::Orders])
            .start(Start::Oldest)
            .heartbeat_ms(200),
    );

    // Orders keep being written while the follower dies.
    // Written through the leader only, so that no write waits on the failed follower.
    let writer = Arc::new(client_of(&c, vec![c.api(leader)]));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = tokio::spawn({
        let (writer, stop) = (writer.clone(), stop.clone());
        async move {
            let mut last: (u64, u32) = (0, 0);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 40 {
                let batch = (0..3).map(|k| order("u1", &format!("o{n}-{k}"))).collect();
                let r = writer.write(batch, pb::AckLevel::Quorum).await.unwrap();
                last = (r.log_index, 2);
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            last
        }
    });

    let first = events_through(&mut stream, (0, 0), Duration::from_secs(20)).await;
    let mut seen = first;
    assert_eq!(stream.stats().node.as_deref(), Some(endpoints[0].as_str()));
    while seen.len() < 30 {
        let more = stream.next().await.unwrap().unwrap();
        if let SubscriptionItem::Event(e) = more {
            seen.push(e);
        }
    }
    match failure {
        Failure::Kill => c.kill(victim).unwrap(),
        Failure::Pause => c.pause(victim, true).unwrap(),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let last = writes.await.unwrap();
    let rest = events_through(&mut stream, last, Duration::from_secs(30)).await;
    seen.extend(rest);

    let stats = stream.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_ne!(
        stats.node.as_deref(),
        Some(endpoints[0].as_str()),
        "{stats:?}"
    );
    assert_eq!(key(&stats.last_delivered), last);
    for w in seen.windows(2) {
        assert!(key(&w[0].position) < key(&w[1].position), "{w:?}");
    }

    // The same stream read afresh from the survivors is exactly what the subscriber saw.
    let fresh_client = client_of(&c, vec![c.api(followers[1]), c.api(leader)]);
    let mut fresh = fresh_client.subscribe(
        SubscribeOptions::new()
            .kinds([pb::RecordKind::Orders])
            .start(Start::Oldest),
    );
    let committed = events_through(&mut fresh, last, Duration::from_secs(20)).await;
    let strip = |es: &[pb::Event]| -> Vec<_> {
        es.iter()
            .map(|e| (key(&e.position), e.record.clone(), e.result))
            .collect()
    };
    assert_eq!(strip(&seen), strip(&committed));
    // Every order written is there, once.
    let orders = committed
        .iter()
        .filter(|e| {
            matches!(
                e.record.as_ref().and_then(|r| r.kind.as_ref()),
                Some(pb::record::Kind::OrderInsert(_))
            )
        })
        .count();
    assert!(orders >= 120, "{orders}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_subscribe_prints_the_first_committed_events_as_json_lines() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let client = c.client().unwrap();
    let mut written = Vec::new();
    for n in 0..4 {
        let batch: Vec<_> = (0..2).map(|k| order("u2", &format!("c{n}-{k}"))).collect();
        let r = client
            .write(batch.clone(), pb::AckLevel::All)
            .await
            .unwrap();
        written.extend(
            batch
                .into_iter()
                .enumerate()
                .map(|(k, rec)| (r.log_index, k as u32, rec)),
        );
    }
    let out = c
        .ctl(&[
            "subscribe",
            "--kinds",
            "orders",
            "--users",
            "u2",
            "--from",
            "oldest",
            "--limit",
            "5",
            "--output",
            "json",
        ])
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for (line, (index, ordinal, record)) in lines.iter().zip(&written) {
        assert_eq!(line["position"], format!("{index}:{ordinal}"));
        assert_eq!(line["outcome"], "ORDER_INSERTED");
        assert_eq!(line["merged"], 1);
        assert_eq!(line["record"], serde_json::to_value(record).unwrap());
        assert!(line["commit_time_ns"].as_i64().unwrap() > 0, "{line}");
    }

    // A bad flag is refused with one line and a non-zero exit.
    let out = c.ctl(&["subscribe", "--from", "someday"]).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("someday"), "{err}");
}
