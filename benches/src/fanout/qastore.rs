//! The QAStore side: the three-node cluster of the write comparison; a batch is one write of
//! that many ticks (quorum acknowledgement), subscribers are realtime `Feed.Subscribe` streams
//! at one node (the fan-out and replay rows). A resuming subscriber is the client library's subscription, which goes on at
//! another node right after the last position it delivered; the others read the generated
//! client's stream as it comes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use qastore_client::{Client, ClientConfig, SubscribeOptions, SubscriptionItem};

use qastore_proto::v1 as pb;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::start_at::At;
use qastore_proto::v1::subscribe_response::Frame;
use tonic::transport::{Channel, Endpoint};

use super::stamp::{self, Stamp};
use super::tap::Tap;
use super::{FeedSystem, Start, Subscription};
use crate::versus::qastore::QaCluster;
use crate::versus::System;

/// The largest frame a subscriber accepts.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A QAStore cluster with a channel to each node for its subscribers.
pub struct QaFeed {
    cluster: QaCluster,
    channels: Vec<Channel>,
    /// For each node, a client that lists it first: where its resuming subscriptions start.
    resuming: Vec<Arc<Client>>,
}

impl QaFeed {
    /// Serves subscriptions from `cluster`.
    pub fn new(cluster: QaCluster) -> Result<QaFeed, String> {
        let channels = cluster
            .endpoints()
            .iter()
            .map(|addr| {
                Endpoint::from_shared(format!("http://{addr}"))
                    .map(|e| {
                        e.connect_timeout(Duration::from_secs(1))
                            .tcp_nodelay(true)
                            // Room for a replay's megabyte frames without waiting on window
                            // updates (no difference measured on 2 cores; it rules the cause out).
                            .initial_stream_window_size(Some(4 << 20))
                            .initial_connection_window_size(Some(8 << 20))
                            .connect_lazy()
                    })
                    .map_err(|e| format!("endpoint {addr}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let endpoints = cluster.endpoints().to_vec();
        let resuming = (0..endpoints.len())
            .map(|first| {
                let order: Vec<String> = (0..endpoints.len())
                    .map(|k| endpoints[(first + k) % endpoints.len()].clone())
                    .collect();
                let config = ClientConfig {
                    client_id: format!("bench-subscriber-{}-{first}", std::process::id()),
                    ..ClientConfig::default()
                };
                Client::new(&order, config)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(QaFeed {
            cluster,
            channels,
            resuming,
        })
    }
}

impl FeedSystem for QaFeed {
    fn name(&self) -> &'static str {
        "QAStore"
    }

    fn nodes(&self) -> usize {
        self.channels.len()
    }

    async fn placement(&self) -> Result<Vec<usize>, String> {
        let leader = self.cluster.leader().await.ok_or("QAStore: no leader")?;
        let mut order: Vec<usize> = (0..self.nodes()).filter(|n| *n != leader).collect();
        order.push(leader);
        Ok(order)
    }

    async fn write(&self, batch: Vec<Stamp>) -> Result<(), String> {
        let records = batch.into_iter().map(stamp::tick).collect();
        self.cluster
            .client()
            .write(records, pb::AckLevel::Quorum)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn subscribe(&self, node: usize, start: Start, resume: bool, tap: Arc<Tap>) -> Subscription {
        if resume {
            return resuming(self.resuming[node].clone(), start, tap);
        }
        let channels = self.channels.clone();
        Subscription::spawn(async move {
            let from = match start {
                Start::Tail => At::Tail(true),
                Start::Oldest => At::Oldest(true),
            };
            stream(channels[node].clone(), from, &tap).await;
        })
    }

    fn kill(&self, node: usize) -> Result<(), String> {
        System::kill(&self.cluster, node)
    }

    fn restart(&self, node: usize) -> Result<(), String> {
        System::restart(&self.cluster, node)
    }

    async fn healthy(&self) -> bool {
        System::healthy(&self.cluster).await
    }

    fn pids(&self) -> Vec<u32> {
        self.cluster.pids()
    }

    fn shutdown(&self) {
        System::shutdown(&self.cluster)
    }
}

/// The client library's subscription, starting at the client's first node (in the given order,
/// not followers first: the placement already chose the node).
fn resuming(client: Arc<Client>, start: Start, tap: Arc<Tap>) -> Subscription {
    Subscription::spawn(async move {
        let options = SubscribeOptions::new()
            .kinds([pb::RecordKind::Ticks])
            .prefer_followers(false)
            .start(match start {
                Start::Tail => qastore_client::Start::Tail,
                Start::Oldest => qastore_client::Start::Oldest,
            });
        let mut events = client.subscribe(options);
        while let Some(item) = events.next().await {
            match item {
                Ok(SubscriptionItem::Event(e)) => {
                    tap.deliver(e.record.as_ref().and_then(stamp::of_record));
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("  QAStore subscription ended: {e}");
                    return;
                }
            }
        }
    })
}

/// Streams from `from` at one node until the stream ends or breaks.
async fn stream(channel: Channel, from: At, tap: &Tap) {
    let mut feed = FeedClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let request = pb::SubscribeRequest {
        filter: Some(pb::EventFilter {
            kinds: vec![pb::RecordKind::Ticks as i32],
            ..Default::default()
        }),
        start: Some(pb::StartAt { at: Some(from) }),
        mode: pb::DeliveryMode::Realtime as i32,
        ..Default::default()
    };
    let Ok(answer) = feed.subscribe(request).await else {
        return;
    };
    let mut frames = answer.into_inner();
    while let Ok(Some(frame)) = frames.message().await {
        if let Some(Frame::Events(batch)) = frame.frame {
            tap.deliver(
                batch
                    .events
                    .iter()
                    .filter_map(|e| e.record.as_ref().and_then(stamp::of_record)),
            );
        }
    }
}
