//! Durable consumers on three real nodes (each with its gRPC API, in this process): a cursor
//! created and acknowledged through followers survives the leader's loss, reads the same on
//! the nodes left, and a stream of the consumer resumes on another node right after the last
//! acknowledged event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use qastore_cluster::config::InitialMember;
use qastore_cluster::convert::records::record_to_pb;
use qastore_cluster::{NodeConfig, RunningNode};
use qastore_proto::v1 as pb;
use qastore_proto::v1::admin_client::AdminClient;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::store_client::StoreClient;
use support::{batches, free_port, init_tracing, settings, SERIAL};
use tonic::transport::Channel;
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(30);

struct Nodes {
    running: Vec<Option<RunningNode>>,
    apis: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Nodes {
    async fn start() -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let members: Vec<InitialMember> = ports
            .iter()
            .enumerate()
            .map(|(i, (api, raft, _))| InitialMember {
                id: i as u64 + 1,
                raft: addr(*raft).to_string(),
                api: addr(*api).to_string(),
            })
            .collect();
        let mut running = Vec::new();
        for (i, (api, raft, http)) in ports.iter().enumerate() {
            let config = NodeConfig {
                cluster_id: "consumers".into(),
                node_id: i as u64 + 1,
                data_dir: dir.path().join(format!("n{}", i + 1)),
                api_listen: addr(*api),
                raft_listen: addr(*raft),
                http_listen: addr(*http),
                initial_members: members.clone(),
                raft: settings(),
                ..NodeConfig::default()
            };
            running.push(Some(qastore_cluster::start(config, i == 0).await.unwrap()));
        }
        let apis = ports.iter().map(|(api, _, _)| addr(*api)).collect();
        Nodes {
            running,
            apis,
            _dir: dir,
        }
    }

    fn channel(&self, id: u64) -> Channel {
        let url = format!("http://{}", self.apis[id as usize - 1]);
        Channel::from_shared(url).unwrap().connect_lazy()
    }

    fn feed(&self, id: u64) -> FeedClient<Channel> {
        FeedClient::new(self.channel(id))
    }

    fn store(&self, id: u64) -> StoreClient<Channel> {
        StoreClient::new(self.channel(id))
    }

    /// The leader the nodes still running agree on: it leads, and every other running node
    /// knows it (a call through a follower that has not heard from it yet is refused).
    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut seen = Vec::new();
            for id in self.up() {
                let mut admin = AdminClient::new(self.channel(id));
                if let Ok(s) = admin.get_node_status(pb::NodeStatusRequest {}).await {
                    let s = s.into_inner();
                    seen.push((s.node_id, s.leader_id));
                }
            }
            let claimed = seen
                .iter()
                .find(|(id, leader)| *leader == Some(*id))
                .map(|(id, _)| *id);
            if let Some(leader) = claimed {
                if seen.len() == self.up().len() && seen.iter().all(|(_, l)| *l == Some(leader)) {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader all agree on: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn up(&self) -> Vec<u64> {
        (1..=3u64)
            .filter(|id| self.running[*id as usize - 1].is_some())
            .collect()
    }

    async fn stop(&mut self, id: u64) {
        let node = self.running[id as usize - 1].take().unwrap();
        node.shutdown(Duration::from_secs(5)).await.unwrap();
    }

    async fn stop_all(&mut self) {
        for id in self.up() {
            self.stop(id).await;
        }
    }
}

fn position(log_index: u64, ordinal: u32) -> pb::Position {
    pb::Position { log_index, ordinal }
}

/// Writes one batch through node `id`; answers its log index and record count.
async fn write(nodes: &Nodes, id: u64, request_id: u64, day: u32) -> (u64, usize) {
    let records: Vec<pb::Record> = batches(1, day)[0].iter().map(record_to_pb).collect();
    let n = records.len();
    let w = nodes
        .store(id)
        .write(pb::WriteRequest {
            client_id: "consumers-test".into(),
            request_id,
            records,
            ack: pb::AckLevel::All as i32,
        })
        .await
        .unwrap()
        .into_inner();
    (w.log_index, n)
}

async fn cursor_on(nodes: &Nodes, id: u64, name: &str) -> Option<pb::Position> {
    let got = nodes
        .feed(id)
        .get_consumer(pb::GetConsumerRequest { name: name.into() })
        .await;
    got.ok().and_then(|r| r.into_inner().cursor)
}

/// Waits until node `id` has applied consumer `name`'s creation and returns its cursor.
async fn cursor_once_created(nodes: &Nodes, id: u64, name: &str) -> pb::Position {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(cursor) = cursor_on(nodes, id, name).await {
            return cursor;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never learned of consumer {name}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_acked_on_a_follower_resumes_on_another_node_after_the_leader_is_lost() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let mut nodes = Nodes::start().await;
    let leader = nodes.leader().await;
    let followers: Vec<u64> = nodes.up().into_iter().filter(|&n| n != leader).collect();
    let (f1, f2) = (followers[0], followers[1]);

    // Created through a follower, starting after everything applied so far.
    let created = nodes
        .feed(f1)
        .create_consumer(pb::CreateConsumerRequest {
            name: "risk".into(),
            cursor: Some(position(0, u32::MAX)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "risk");
    assert!(!created.expired);
    assert!(created.created_at_ns > 0);

    let (first, n) = write(&nodes, f1, 1, 20241202).await;
    let (second, _) = write(&nodes, f2, 2, 20241203).await;
    assert!(n > 4 && second > first);

    // Bad input is refused naming the field, and changes nothing.
    let mut feed = nodes.feed(f1);
    let e = feed
        .ack(pb::AckRequest {
            consumer: "risk".into(),
            position: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("field position"), "{e:?}");
    let e = feed
        .ack(pb::AckRequest {
            consumer: "no such/name".into(),
            position: Some(position(first, 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("field consumer"), "{e:?}");
    let e = feed
        .ack(pb::AckRequest {
            consumer: "risk".into(),
            position: Some(position(second + 1_000, 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("field position"), "{e:?}");
    let e = feed
        .get_consumer(pb::GetConsumerRequest {
            name: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Acknowledged through a follower (once it has applied the batch), up to the fourth event
    // of the first batch.
    let acked = position(first, 3);
    ack_when_applied(&nodes, f1, "risk", acked).await;
    // An older ack changes nothing.
    let back = feed
        .ack(pb::AckRequest {
            consumer: "risk".into(),
            position: Some(position(first, 1)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.cursor, Some(acked));

    nodes.stop(leader).await;

    // Both nodes left read the same cursor (once a new leader is elected, each catches up
    // with it before answering).
    nodes.leader().await;
    for id in [f1, f2] {
        assert_eq!(
            cursor_on(&nodes, id, "risk").await,
            Some(acked),
            "node {id}"
        );
    }
    let listed = nodes
        .feed(f2)
        .list_consumers(pb::ListConsumersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.consumers.len(), 1);
    assert!(listed.consumers[0].lag_entries >= second - first);

    // A stream of the consumer on the other follower resumes right after the ack.
    let mut stream = consumer_stream(&nodes, f2, "risk").await;
    let seen = positions(&mut stream, n - 4 + 1).await;
    assert_eq!(seen[0], position(first, 4));
    assert_eq!(seen[n - 4 - 1], position(first, n as u32 - 1));
    assert_eq!(seen[n - 4], position(second, 0));
    drop(stream);
    nodes.stop_all().await;
}

/// A stream of `consumer` on node `id`, from where the consumer is.
async fn consumer_stream(
    nodes: &Nodes,
    id: u64,
    consumer: &str,
) -> tonic::Streaming<pb::SubscribeResponse> {
    nodes
        .feed(id)
        .subscribe(pb::SubscribeRequest {
            consumer: consumer.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The positions of the next events `stream` sends, at least `count` of them (all of the
/// frame that reaches the count).
async fn positions(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    count: usize,
) -> Vec<pb::Position> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while seen.len() < count {
        assert!(
            Instant::now() < deadline,
            "the stream stalled after {seen:?}"
        );
        let frame = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(pb::subscribe_response::Frame::Events(b)) = frame.frame {
            seen.extend(b.events.into_iter().map(|e| e.position.unwrap()));
        }
    }
    seen
}

/// Acks `position` for `consumer` on node `id`, retrying while the node has not applied it.
async fn ack_when_applied(nodes: &Nodes, id: u64, consumer: &str, position: pb::Position) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = nodes
            .feed(id)
            .ack(pb::AckRequest {
                consumer: consumer.into(),
                position: Some(position),
            })
            .await;
        match r {
            Ok(r) => {
                assert_eq!(r.into_inner().cursor, Some(position));
                return;
            }
            Err(e) if e.code() == Code::InvalidArgument && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_creates_its_consumer_and_its_node_takes_acks_only_of_what_it_delivered() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let mut nodes = Nodes::start().await;
    let leader = nodes.leader().await;
    let followers: Vec<u64> = nodes.up().into_iter().filter(|&n| n != leader).collect();
    let (f1, f2) = (followers[0], followers[1]);

    // An unknown consumer is created by its first stream, at the live tail.
    let mut stream = consumer_stream(&nodes, f1, "audit").await;
    let created = cursor_once_created(&nodes, f2, "audit").await;

    let (index, n) = write(&nodes, leader, 1, 20241202).await;
    assert!(created.log_index < index);
    let seen = positions(&mut stream, n).await;
    let last = position(index, n as u32 - 1);
    assert_eq!(seen.last(), Some(&last));

    // The node serving the stream takes acks up to what it delivered (the end of the batch
    // once it has sent everything in it), not beyond.
    let e = nodes
        .feed(f1)
        .ack(pb::AckRequest {
            consumer: "audit".into(),
            position: Some(position(index + 1, 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("field position"), "{e:?}");
    assert!(e.message().contains("delivered"), "{e:?}");
    ack_when_applied(&nodes, f1, "audit", last).await;
    // A node without a stream of it takes acks up to what it applied.
    ack_when_applied(&nodes, f2, "audit", position(index, u32::MAX)).await;

    // Deleted, it is gone everywhere.
    let deleted = nodes
        .feed(f2)
        .delete_consumer(pb::DeleteConsumerRequest {
            name: "audit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let e = nodes
        .feed(leader)
        .get_consumer(pb::GetConsumerRequest {
            name: "audit".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    drop(stream);
    nodes.stop_all().await;
}
