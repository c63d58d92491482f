//! The `Feed` gRPC service: subscriptions, and the durable consumers' calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qastore_proto::frames::feed_server::Feed;
use qastore_proto::frames::SubscribeFrame;
use qastore_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::consumers::Consumers;
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
    consumers: Arc<Consumers>,
    streams: Arc<AtomicUsize>,
    stopped: watch::Receiver<bool>,
}

impl FeedService {
    /// The service of `node`; its streams end when `stopped` turns true.
    pub fn new(node: Arc<Node>, stopped: watch::Receiver<bool>) -> FeedService {
        let live = node.raft.app().live().clone();
        FeedService {
            consumers: Arc::new(Consumers::new(node.clone())),
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
    ) -> Result<ReceiverStream<Result<SubscribeFrame, Status>>, Status> {
        self.node.check_serving()?;
        let mut spec = self.spec(&mut req)?;
        let mut start = start::start_from_pb(req.start.take())?;
        let consumer = (!req.consumer.is_empty()).then(|| req.consumer.clone());
        if let Some(name) = &consumer {
            // A known consumer resumes after its cursor; an unknown one starts as asked.
            if let Some(cursor) = self.consumers.cursor(name).await? {
                if start.is_some() {
                    return Err(ApiError::InvalidArgument(format!(
                        "field start: must be unset for consumer {name}, which resumes after \
                         its last acknowledged position {cursor}"
                    ))
                    .into());
                }
                start = Some(Start::After(cursor));
            }
        }
        let slot = StreamSlot::take(&self.streams, self.node.config.feed.max_streams)?;
        let mut resolved = start::resolve(
            &self.node,
            &self.live,
            start.unwrap_or(Start::Tail),
            &spec.filter,
            self.node.read_timeout(),
        )
        .await?;
        let mut closing = None;
        if let Some(name) = consumer {
            let cursor = self.consumers.open(&name, resolved.cursor).await?;
            closing = Some(self.consumers.closing(&name));
            if cursor != resolved.cursor {
                // Created meanwhile, elsewhere, with another cursor: resume after that one.
                resolved = start::resolve(
                    &self.node,
                    &self.live,
                    Start::After(cursor),
                    &spec.filter,
                    self.node.read_timeout(),
                )
                .await?;
            }
            let consumers = self.consumers.clone();
            spec.on_delivered = Some(Box::new(move |p| consumers.note_delivered(&name, p)));
        }
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL_FRAMES);
        let (node, live, stopped) = (self.node.clone(), self.live.clone(), self.stopped.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _closing = closing;
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
    type SubscribeStream = ReceiverStream<Result<SubscribeFrame, Status>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (scope, who) = crate::access::Caller::scope_of(request.extensions());
        scope.check_filter("Feed/Subscribe", &who, request.get_ref().filter.as_ref())?;
        Ok(Response::new(self.open(request.into_inner()).await?))
    }

    async fn create_consumer(
        &self,
        request: Request<pb::CreateConsumerRequest>,
    ) -> Result<Response<pb::ConsumerInfo>, Status> {
        let (md, _, req) = request.into_parts();
        Ok(Response::new(self.consumers.create(&md, req).await?))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let (md, _, req) = request.into_parts();
        Ok(Response::new(self.consumers.ack(&md, req).await?))
    }

    async fn list_consumers(
        &self,
        request: Request<pb::ListConsumersRequest>,
    ) -> Result<Response<pb::ListConsumersResponse>, Status> {
        let (md, _, req) = request.into_parts();
        Ok(Response::new(self.consumers.list(&md, req).await?))
    }

    async fn get_consumer(
        &self,
        request: Request<pb::GetConsumerRequest>,
    ) -> Result<Response<pb::ConsumerInfo>, Status> {
        let (md, _, req) = request.into_parts();
        Ok(Response::new(self.consumers.get(&md, req).await?))
    }

    async fn delete_consumer(
        &self,
        request: Request<pb::DeleteConsumerRequest>,
    ) -> Result<Response<pb::DeleteConsumerResponse>, Status> {
        let (md, _, req) = request.into_parts();
        Ok(Response::new(self.consumers.delete(&md, req).await?))
    }
}
