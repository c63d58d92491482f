//! The QAStore side: the three-node cluster of the write comparison; a batch is one write of
//! that many ticks (quorum acknowledgement), subscribers are realtime `Feed.Subscribe` streams
//! at one node. A resuming stream goes on at the next node right after the last position it
//! was sent (an event, or a progress frame's applied position).

use std::sync::Arc;
use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::start_at::At;
use qastore_proto::v1::subscribe_response::Frame;
use tonic::transport::{Channel, Endpoint};

use super::stamp::{self, Stamp};
use super::tap::Tap;
use super::{next_node, FeedSystem, Start, Subscription};
use crate::versus::qastore::QaCluster;
use crate::versus::System;

/// The largest frame a subscriber accepts.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A QAStore cluster with a channel to each node for its subscribers.
pub struct QaFeed {
    cluster: QaCluster,
    channels: Vec<Channel>,
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
                            .connect_lazy()
                    })
                    .map_err(|e| format!("endpoint {addr}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(QaFeed { cluster, channels })
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
        let channels = self.channels.clone();
        Subscription::spawn(async move {
            let mut from = match start {
                Start::Tail => At::Tail(true),
                Start::Oldest => At::Oldest(true),
            };
            let mut node = node;
            loop {
                stream(channels[node].clone(), &mut from, &tap).await;
                if !resume {
                    return;
                }
                node = next_node(node, channels.len());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
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

/// Streams from `from` at one node until the stream breaks, moving `from` to just after the
/// last position the node sent.
async fn stream(channel: Channel, from: &mut At, tap: &Tap) {
    let mut feed = FeedClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let request = pb::SubscribeRequest {
        filter: Some(pb::EventFilter {
            kinds: vec![pb::RecordKind::Ticks as i32],
            ..Default::default()
        }),
        start: Some(pb::StartAt {
            at: Some(from.clone()),
        }),
        mode: pb::DeliveryMode::Realtime as i32,
        ..Default::default()
    };
    let Ok(answer) = feed.subscribe(request).await else {
        return;
    };
    let mut frames = answer.into_inner();
    while let Ok(Some(frame)) = frames.message().await {
        match frame.frame {
            Some(Frame::Events(batch)) => {
                tap.deliver(
                    batch
                        .events
                        .iter()
                        .filter_map(|e| e.record.as_ref().and_then(stamp::of_record)),
                );
                if let Some(p) = batch.events.last().and_then(|e| e.position) {
                    *from = At::After(p);
                }
            }
            Some(Frame::Progress(p)) => {
                if let Some(applied) = p.applied {
                    let ahead = match from {
                        At::After(last) => {
                            (applied.log_index, applied.ordinal) > (last.log_index, last.ordinal)
                        }
                        _ => true,
                    };
                    if ahead {
                        *from = At::After(applied);
                    }
                }
            }
            Some(Frame::Snapshot(_)) | None => {}
        }
    }
}
