//! Durable consumers as a node serves them: named cursors kept through the log (see
//! `qastore_exchange::consumer`), so a cursor survives failover and reads the same on every
//! node.
//!
//! Changes (create, ack, delete) are proposed by the leader; a follower forwards them to the
//! leader's `Feed` service, marked so they are never forwarded twice. Reads (get, list, and
//! the cursor a stream resumes from) first catch up with the leader's commit index when a
//! leader answers, so an ack made through any node is seen; without a leader they answer from
//! this node's state (a resumed stream may then repeat events, never skip any).
//!
//! An ack may not go past what the consumer was delivered: past what this node's streams of it
//! delivered, or, where none runs here, past this node's applied index.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use qastore_exchange::consumer::{self, ConsumerState};
use qastore_exchange::feed::{journal, Position};
use qastore_exchange::{Command, Response, SystemCommand};
use qastore_lsm::Engine;
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::feed_client::FeedClient;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::convert::{position_from_pb, position_to_pb};
use crate::deadline::call_timeout;
use crate::error::ApiError;
use crate::forward::{self, Route};
use crate::node::Node;
use crate::replicated::request;

/// What this node's streams of one consumer delivered.
#[derive(Debug, Clone, Copy)]
struct Delivered {
    /// Streams of the consumer running here.
    streams: usize,
    /// The last position they delivered (the cursor they started after, before any).
    through: Position,
}

/// Ends a consumer's stream on this node (see [`Consumers::open`]) when dropped.
#[derive(Debug)]
pub struct Closing {
    consumers: Arc<Consumers>,
    name: String,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.consumers.closed(&self.name);
    }
}

/// A node's durable consumers: shared by its `Feed` service and the streams it runs.
#[derive(Debug)]
pub struct Consumers {
    node: Arc<Node>,
    delivered: Mutex<HashMap<String, Delivered>>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn invalid(message: impl Into<String>) -> Status {
    ApiError::InvalidArgument(message.into()).into()
}

fn check_name(name: &str, field: &'static str) -> Result<(), Status> {
    consumer::check_name(name).map_err(|e| invalid(e.in_field(field).to_string()))
}

fn required_position(p: Option<pb::Position>, field: &str) -> Result<Position, Status> {
    p.map(|p| position_from_pb(&p))
        .ok_or_else(|| invalid(format!("field {field}: a position is required")))
}

fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.get(api_metadata::FORWARDED).is_some()
}

/// A consumer as the API shows it, with its lag behind this node's `applied` index.
fn info(
    engine: &Engine,
    applied: u64,
    c: &ConsumerState,
) -> qastore_exchange::Result<pb::ConsumerInfo> {
    let lag_entries = applied.saturating_sub(c.cursor.index);
    let committed = journal::commit_time(engine, c.cursor.index)?.unwrap_or(0);
    let lag_ms = if lag_entries == 0 || committed == 0 {
        0
    } else {
        (now_ns().saturating_sub(committed).max(0) / 1_000_000) as u64
    };
    Ok(pb::ConsumerInfo {
        name: c.name.clone(),
        cursor: Some(position_to_pb(c.cursor)),
        lag_entries,
        cursor_commit_time_ns: committed,
        lag_ms,
        expired: c.expired,
        created_at_ns: c.created_at_ns,
    })
}

/// The answer of an applied consumer command that is not the one expected.
fn unexpected(response: Response) -> Status {
    match response {
        Response::UnknownConsumer { name } => ApiError::NotFound(format!(
            "field consumer: no durable consumer is called {name:?}"
        ))
        .into(),
        Response::Refused { reason } => invalid(reason),
        other => ApiError::Internal(format!("unexpected answer {other:?}")).into(),
    }
}

impl Consumers {
    /// The consumers of `node`.
    pub fn new(node: Arc<Node>) -> Consumers {
        Consumers {
            node,
            delivered: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a durable consumer (through the leader); one that exists is answered as it is.
    pub async fn create(
        &self,
        metadata: &MetadataMap,
        req: pb::CreateConsumerRequest,
    ) -> Result<pb::ConsumerInfo, Status> {
        self.node.check_serving()?;
        check_name(&req.name, "name")?;
        let cursor = required_position(req.cursor, "cursor")?;
        let forwarded = is_forwarded(metadata);
        if !forwarded {
            let applied = self.node.raft.applied_index();
            if cursor.index > applied {
                return Err(invalid(format!(
                    "field cursor: {cursor} is beyond this node's applied index {applied}"
                )));
            }
        }
        let timeout = call_timeout(metadata, self.node.write_timeout());
        match forward::route(&self.node, forwarded)? {
            Route::Forward(leader) => {
                self.forward(metadata, &leader, req, timeout, |mut c, r| async move {
                    c.create_consumer(r).await
                })
                .await
            }
            Route::Here => {
                let cmd = SystemCommand::CreateConsumer {
                    name: req.name,
                    cursor,
                    created_at_ns: now_ns(),
                };
                match self.propose(cmd, timeout).await? {
                    Response::Consumer(c) => self.info_of(c).await,
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// Acknowledges every event of a consumer up to and including the position given.
    pub async fn ack(
        &self,
        metadata: &MetadataMap,
        req: pb::AckRequest,
    ) -> Result<pb::AckResponse, Status> {
        self.node.check_serving()?;
        check_name(&req.consumer, "consumer")?;
        let position = required_position(req.position, "position")?;
        let forwarded = is_forwarded(metadata);
        // The node that serves the consumer's stream knows what it delivered; the leader a
        // follower forwards to trusts that node's check.
        if !forwarded {
            self.check_delivered(&req.consumer, position)?;
        }
        let timeout = call_timeout(metadata, self.node.write_timeout());
        match forward::route(&self.node, forwarded)? {
            Route::Forward(leader) => {
                self.forward(metadata, &leader, req, timeout, |mut c, r| async move {
                    c.ack(r).await
                })
                .await
            }
            Route::Here => {
                let cmd = SystemCommand::AckConsumer {
                    name: req.consumer,
                    position,
                };
                match self.propose(cmd, timeout).await? {
                    Response::Consumer(c) => Ok(pb::AckResponse {
                        cursor: Some(position_to_pb(c.cursor)),
                    }),
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// Deletes a consumer (through the leader).
    pub async fn delete(
        &self,
        metadata: &MetadataMap,
        req: pb::DeleteConsumerRequest,
    ) -> Result<pb::DeleteConsumerResponse, Status> {
        self.node.check_serving()?;
        check_name(&req.name, "name")?;
        let forwarded = is_forwarded(metadata);
        let timeout = call_timeout(metadata, self.node.write_timeout());
        match forward::route(&self.node, forwarded)? {
            Route::Forward(leader) => {
                self.forward(metadata, &leader, req, timeout, |mut c, r| async move {
                    c.delete_consumer(r).await
                })
                .await
            }
            Route::Here => {
                let cmd = SystemCommand::DeleteConsumer { name: req.name };
                match self.propose(cmd, timeout).await? {
                    Response::ConsumerDeleted { existed } => {
                        Ok(pb::DeleteConsumerResponse { deleted: existed })
                    }
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// One consumer, read on this node once it has caught up with the leader.
    pub async fn get(
        &self,
        metadata: &MetadataMap,
        req: pb::GetConsumerRequest,
    ) -> Result<pb::ConsumerInfo, Status> {
        self.node.check_serving()?;
        check_name(&req.name, "name")?;
        let timeout = call_timeout(metadata, self.node.read_timeout());
        self.catch_up(timeout).await;
        let name = req.name.clone();
        let found = self
            .read(move |engine, applied| match consumer::get(engine, &name)? {
                Some(c) => info(engine, applied, &c).map(Some),
                None => Ok(None),
            })
            .await?;
        found.ok_or_else(|| {
            ApiError::NotFound(format!(
                "field name: no durable consumer is called {:?}",
                req.name
            ))
            .into()
        })
    }

    /// Every consumer, read on this node once it has caught up with the leader.
    pub async fn list(
        &self,
        metadata: &MetadataMap,
        _req: pb::ListConsumersRequest,
    ) -> Result<pb::ListConsumersResponse, Status> {
        self.node.check_serving()?;
        let timeout = call_timeout(metadata, self.node.read_timeout());
        self.catch_up(timeout).await;
        let consumers = self
            .read(|engine, applied| {
                consumer::list(engine)?
                    .iter()
                    .map(|c| info(engine, applied, c))
                    .collect()
            })
            .await?;
        Ok(pb::ListConsumersResponse { consumers })
    }

    /// The cursor of consumer `name`, read once this node has caught up with the leader;
    /// `None` for an unknown consumer. An expired consumer cannot resume: OUT_OF_RANGE.
    pub async fn cursor(&self, name: &str) -> Result<Option<Position>, Status> {
        self.node.check_serving()?;
        check_name(name, "consumer")?;
        self.catch_up(self.node.read_timeout()).await;
        let owned = name.to_owned();
        let (found, earliest) = self
            .read(move |engine, applied| {
                let earliest = journal::earliest(engine)?;
                Ok((
                    consumer::get(engine, &owned)?,
                    earliest.unwrap_or(Position::end_of(applied)),
                ))
            })
            .await?;
        match found {
            Some(c) if c.expired => Err(ApiError::OutOfRange {
                message: format!(
                    "field consumer: {name} expired (retention dropped events it had not \
                     acknowledged); delete it and create it again"
                ),
                earliest,
                last_delivered: None,
            }
            .into()),
            found => Ok(found.map(|c| c.cursor)),
        }
    }

    /// Where a stream of consumer `name` starts after: its cursor, or, for a consumer that
    /// does not exist yet, `start_after`, with which it is created (through the leader). The
    /// stream counts as running here until [`Consumers::closed`].
    pub async fn open(&self, name: &str, start_after: Position) -> Result<Position, Status> {
        let cursor = match self.cursor(name).await? {
            Some(cursor) => cursor,
            None => {
                let created = self
                    .create(
                        &MetadataMap::new(),
                        pb::CreateConsumerRequest {
                            name: name.to_owned(),
                            cursor: Some(position_to_pb(start_after)),
                        },
                    )
                    .await?;
                created.cursor.map_or(start_after, |p| position_from_pb(&p))
            }
        };
        let mut delivered = self.delivered.lock();
        let d = delivered.entry(name.to_owned()).or_insert(Delivered {
            streams: 0,
            through: cursor,
        });
        d.streams += 1;
        d.through = d.through.max(cursor);
        Ok(cursor)
    }

    /// Records that a stream of consumer `name` on this node delivered everything up to
    /// `position`.
    pub fn note_delivered(&self, name: &str, position: Position) {
        if let Some(d) = self.delivered.lock().get_mut(name) {
            d.through = d.through.max(position);
        }
    }

    /// Calls [`Consumers::closed`] for a stream of `name` when dropped: held by the stream.
    pub fn closing(self: &Arc<Self>, name: &str) -> Closing {
        Closing {
            consumers: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Records that a stream of consumer `name` opened here ended.
    pub fn closed(&self, name: &str) {
        let mut delivered = self.delivered.lock();
        if let Some(d) = delivered.get_mut(name) {
            d.streams = d.streams.saturating_sub(1);
            if d.streams == 0 {
                delivered.remove(name);
            }
        }
    }

    /// Refuses an ack past what this node delivered to the consumer (or, where no stream of
    /// it runs here, past this node's applied index).
    fn check_delivered(&self, name: &str, position: Position) -> Result<(), Status> {
        let (limit, what) = match self.delivered.lock().get(name) {
            Some(d) => (d.through, "what this node delivered to it"),
            None => (
                Position::end_of(self.node.raft.applied_index()),
                "this node's applied index",
            ),
        };
        if position > limit {
            return Err(invalid(format!(
                "field position: {position} is beyond {what} ({limit}) for consumer {name}"
            )));
        }
        Ok(())
    }

    /// Waits (within `timeout`) until this node has applied what the leader has committed;
    /// without an answer from a leader, this node's state is read as it is.
    async fn catch_up(&self, timeout: Duration) {
        let raft = &self.node.raft;
        let caught_up = match raft.linearizable_index(timeout).await {
            Ok(index) => raft.wait_applied(index, timeout).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = caught_up {
            tracing::debug!(error = %e, "consumers read from this node's state as it is");
        }
    }

    /// Runs `f` on this node's engine (off the async runtime), with its applied index.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine, u64) -> qastore_exchange::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = self.node.raft.engine().map_err(ApiError::from)?;
        let applied = self.node.raft.applied_index();
        let out = tokio::task::spawn_blocking(move || f(&engine, applied))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(out.map_err(ApiError::from)?)
    }

    /// The API form of `c`, with its lag behind this node.
    async fn info_of(&self, c: ConsumerState) -> Result<pb::ConsumerInfo, Status> {
        self.read(move |engine, applied| info(engine, applied, &c))
            .await
    }

    /// Proposes a consumer command here, the leader, and answers what applying it answered.
    async fn propose(&self, cmd: SystemCommand, timeout: Duration) -> Result<Response, Status> {
        let (_, response) = self
            .node
            .raft
            .propose(request(&Command::System(cmd)), timeout)
            .await
            .map_err(ApiError::from)?;
        Ok(response)
    }

    /// Sends a call to the leader's `Feed` service at `leader` with the caller's metadata,
    /// the time left, and the mark that keeps the leader from forwarding it again.
    async fn forward<Req, Resp, Fut>(
        &self,
        metadata: &MetadataMap,
        leader: &str,
        req: Req,
        timeout: Duration,
        call: impl FnOnce(FeedClient<Channel>, Request<Req>) -> Fut,
    ) -> Result<Resp, Status>
    where
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let client = self.node.peers.feed(leader)?;
        let mut fwd = Request::from_parts(
            forward::callers_metadata(metadata),
            tonic::Extensions::default(),
            req,
        );
        fwd.set_timeout(timeout);
        fwd.metadata_mut()
            .insert(api_metadata::FORWARDED, self.node.raft.id().into());
        match tokio::time::timeout(timeout, call(client, fwd)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) if s.code() == tonic::Code::Unavailable && s.metadata().is_empty() => {
                Err(ApiError::NoLeader(format!(
                    "the leader this node knows of ({leader}) is unreachable ({}): an election \
                     may be under way",
                    s.message()
                ))
                .into())
            }
            Ok(Err(s)) => Err(s),
            Err(_) => Err(ApiError::DeadlineExceeded(format!(
                "the leader at {leader} did not answer in time"
            ))
            .into()),
        }
    }
}
