//! The `Feed` gRPC service: subscriptions, and the durable consumers' calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_proto::v1::feed_server::Feed;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::filter_from_pb;
use super::live::LiveFeed;
use super::start::{self, Start};
use super::stream::{self, Mode, StreamSpec};
use crate::convert::records::record_to_pb;
use crate::error::ApiError;
use crate::node::Node;

/// The default window of batched and conflated streams.
const DEFAULT_WINDOW: Duration = Duration::from_millis(100);
/// The longest window.
const MAX_WINDOW_MS: u32 = 60_000;
/// The default heartbeat.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// The shortest heartbeat.
const MIN_HEARTBEAT_MS: u32 = 10;
/// The default and largest events per frame.
const DEFAULT_FRAME_EVENTS: usize = 1024;
const MAX_FRAME_EVENTS: u32 = 65_536;
/// Frames a stream may have waiting for the subscriber's connection.
const STREAM_CHANNEL_FRAMES: usize = 8;

/// The feed service of one node.
#[derive(Debug)]
pub struct FeedService {
    node: Arc<Node>,
    live: Arc<LiveFeed>,
    streams: Arc<AtomicUsize>,
    stopped: watch::Receiver<bool>,
}

impl FeedService {
    /// The service of `node`; its streams end when `stopped` turns true.
    pub fn new(node: Arc<Node>, stopped: watch::Receiver<bool>) -> FeedService {
        let live = node.raft.app().live().clone();
        FeedService {
            node,
            live,
            streams: Arc::new(AtomicUsize::new(0)),
            stopped,
        }
    }

    /// Checks a request and works out its stream.
    fn spec(&self, req: &mut pb::SubscribeRequest) -> Result<StreamSpec, ApiError> {
        let filter = filter_from_pb(req.filter.take())?;
        let window = match req.window_ms {
            0 => DEFAULT_WINDOW,
            w if w > MAX_WINDOW_MS => {
                return Err(ApiError::InvalidArgument(format!(
                    "field window_ms: {w} exceeds {MAX_WINDOW_MS}"
                )))
            }
            w => Duration::from_millis(u64::from(w)),
        };
        let mode = match pb::DeliveryMode::try_from(req.mode) {
            Ok(pb::DeliveryMode::Unspecified | pb::DeliveryMode::Realtime) => Mode::Realtime,
            Ok(pb::DeliveryMode::Batched) => Mode::Batched(window),
            Ok(pb::DeliveryMode::Conflated) => Mode::Conflated(window),
            Err(_) => {
                return Err(ApiError::InvalidArgument(format!(
                    "field mode: unknown delivery mode {}",
                    req.mode
                )))
            }
        };
        let heartbeat = match req.heartbeat_ms {
            0 => DEFAULT_HEARTBEAT,
            h if h < MIN_HEARTBEAT_MS => {
                return Err(ApiError::InvalidArgument(format!(
                    "field heartbeat_ms: {h} is below {MIN_HEARTBEAT_MS}"
                )))
            }
            h => Duration::from_millis(u64::from(h)),
        };
        let max_frame_events = match req.max_frame_events {
            0 => DEFAULT_FRAME_EVENTS,
            n if n > MAX_FRAME_EVENTS => {
                return Err(ApiError::InvalidArgument(format!(
                    "field max_frame_events: {n} exceeds {MAX_FRAME_EVENTS}"
                )))
            }
            n => n as usize,
        };
        let settings = &self.node.config.feed;
        let max_pending_events = match req.max_buffered_events {
            0 => settings.stream_buffer_events as u64,
            n => u64::from(n).min(settings.stream_buffer_events as u64),
        };
        let max_pending_bytes = match req.max_buffered_bytes {
            0 => settings.stream_buffer_bytes,
            n => n.min(settings.stream_buffer_bytes),
        };
        Ok(StreamSpec {
            filter,
            mode,
            heartbeat,
            max_frame_events,
            max_pending_events,
            max_pending_bytes,
            on_delivered: None,
        })
    }

    async fn open(
        &self,
        mut req: pb::SubscribeRequest,
    ) -> Result<ReceiverStream<Result<pb::SubscribeResponse, Status>>, ApiError> {
        self.node.check_serving()?;
        let spec = self.spec(&mut req)?;
        let start = start::start_from_pb(req.start.take())?;
        if !req.consumer.is_empty() {
            return Err(ApiError::Unavailable(
                "durable consumers are not served by this node".into(),
            ));
        }
        let resolved = start::resolve(
            &self.node,
            &self.live,
            start.unwrap_or(Start::Tail),
            &spec.filter,
            self.node.read_timeout(),
        )
        .await?;
        let slot = StreamSlot::take(&self.streams, self.node.config.feed.max_streams)?;
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL_FRAMES);
        let (node, live, stopped) = (self.node.clone(), self.live.clone(), self.stopped.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(state) = resolved.state {
                let records = state.records.iter().map(record_to_pb).collect();
                let part = spec.max_frame_events;
                if !stream::send_state(&tx, state.applied_index, records, part).await {
                    return;
                }
            }
            stream::run(node, live, spec, resolved.cursor, tx, stopped).await;
        });
        Ok(ReceiverStream::new(rx))
    }
}

/// A place among the node's streams, given back when the stream ends.
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Result<StreamSlot, ApiError> {
        let was = count.fetch_add(1, Ordering::AcqRel);
        if was >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::ResourceExhausted(format!(
                "this node serves {max} streams already; subscribe on another node"
            )));
        }
        Ok(StreamSlot(count.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[tonic::async_trait]
impl Feed for FeedService {
    type SubscribeStream = ReceiverStream<Result<pb::SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(Response::new(self.open(request.into_inner()).await?))
    }

    // Durable consumers: see `consumers`.
    async fn create_consumer(
        &self,
        _request: Request<pb::CreateConsumerRequest>,
    ) -> Result<Response<pb::ConsumerInfo>, Status> {
        Err(Status::unimplemented("durable consumers: see consumers"))
    }

    async fn ack(
        &self,
        _request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        Err(Status::unimplemented("durable consumers: see consumers"))
    }

    async fn list_consumers(
        &self,
        _request: Request<pb::ListConsumersRequest>,
    ) -> Result<Response<pb::ListConsumersResponse>, Status> {
        Err(Status::unimplemented("durable consumers: see consumers"))
    }

    async fn get_consumer(
        &self,
        _request: Request<pb::GetConsumerRequest>,
    ) -> Result<Response<pb::ConsumerInfo>, Status> {
        Err(Status::unimplemented("durable consumers: see consumers"))
    }

    async fn delete_consumer(
        &self,
        _request: Request<pb::DeleteConsumerRequest>,
    ) -> Result<Response<pb::DeleteConsumerResponse>, Status> {
        Err(Status::unimplemented("durable consumers: see consumers"))
    }
}
