//! [`Subscription`]: a stream of committed events that survives the failure of the node
//! serving it. When a stream fails (transport error, UNAVAILABLE, the stream ends, or no frame
//! for three heartbeat intervals) it is opened again on another node, after the last position
//! handed to the caller, and whatever that node repeats is dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, Stream, StreamExt};
use parking_lot::Mutex;
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use tonic::{Code, Status, Streaming};

use super::cursor::Cursor;
use super::nodes::{self, Role};
use super::options::{Start, SubscribeOptions};
use crate::connector::Connector;
use crate::error::ClientError;
use crate::retry::Backoff;

/// What a subscription yields.
// Events are nearly every item: boxing each would cost more than the space it saves.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionItem {
    /// One committed event.
    Event(pb::Event),
    /// A part of the state of a snapshot start.
    Snapshot(pb::SnapshotPart),
    /// Everything matching up to `applied` was sent (a heartbeat, or the end of a window).
    Progress(pb::Progress),
}

/// A subscription's counters, as of now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscriptionStats {
    /// Streams opened again after a failure.
    pub reconnects: u64,
    /// Events a resumed stream repeated, dropped before the caller saw them.
    pub duplicates_dropped: u64,
    /// The last event handed to the caller.
    pub last_delivered: Option<pb::Position>,
    /// The node serving the stream now (its client address), if any.
    pub node: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    reconnects: AtomicU64,
    duplicates: AtomicU64,
    last: Mutex<Option<pb::Position>>,
    node: Mutex<Option<String>>,
}

/// A resuming stream of committed events (see the module's documentation). Poll it as a
/// [`Stream`]; it ends after a fatal error (OUT_OF_RANGE, INVALID_ARGUMENT, NOT_FOUND, or no
/// node for the options' `resume_for`), never quietly.
pub struct Subscription {
    inner: BoxStream<'static, Result<SubscriptionItem, ClientError>>,
    shared: Arc<Shared>,
    connector: Connector,
    endpoints: Vec<String>,
    call_timeout: Duration,
    consumer: Option<String>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Subscription {
    pub(crate) fn start(
        connector: Connector,
        endpoints: Vec<String>,
        call_timeout: Duration,
        options: SubscribeOptions,
    ) -> Subscription {
        let shared = Arc::new(Shared::default());
        let consumer = options.consumer.clone();
        let driver = Driver {
            cursor: Cursor::new(options.start.clone(), options.consumer.is_some()),
            options,
            connector: connector.clone(),
            endpoints: endpoints.clone(),
            call_timeout,
            shared: shared.clone(),
            stream: None,
            pending: VecDeque::new(),
            queue: VecDeque::new(),
            turn: 0,
            last_failed: None,
            leader_hint: None,
            consumer_known: false,
            opened: false,
            failing_since: None,
            last_error: String::new(),
            backoff: Backoff::new(),
            done: false,
        };
        let inner = futures::stream::unfold(driver, |mut d| async move {
            let item = d.next().await?;
            Some((item, d))
        })
        .boxed();
        Subscription {
            inner,
            shared,
            connector,
            endpoints,
            call_timeout,
            consumer,
        }
    }

    /// Acknowledges, for the subscription's durable consumer, every event up to and including
    /// `position`; answers the consumer's cursor after it. Asks the node serving the stream
    /// first (a node accepts acks only up to what it has applied), then the other endpoints.
    pub async fn ack(&self, position: pb::Position) -> Result<pb::Position, ClientError> {
        let Some(consumer) = &self.consumer else {
            return Err(Status::invalid_argument(
                "field consumer: the subscription has no durable consumer",
            )
            .into());
        };
        let serving = self.shared.node.lock().clone();
        let others = self
            .endpoints
            .iter()
            .filter(|a| Some(*a) != serving.as_ref());
        let mut last = None;
        for addr in serving.iter().chain(others) {
            let mut feed = self.connector.feed_at(addr)?;
            let mut req = tonic::Request::new(pb::AckRequest {
                consumer: consumer.clone(),
                position: Some(position),
            });
            req.set_timeout(self.call_timeout);
            match feed.ack(req).await {
                Ok(r) => return Ok(r.into_inner().cursor.unwrap_or_default()),
                Err(status) => {
                    let e = ClientError::from(status);
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::BadEndpoint("no endpoints given".into())))
    }

    /// Its counters now.
    pub fn stats(&self) -> SubscriptionStats {
        SubscriptionStats {
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
            duplicates_dropped: self.shared.duplicates.load(Ordering::Relaxed),
            last_delivered: *self.shared.last.lock(),
            node: self.shared.node.lock().clone(),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<SubscriptionItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(SubscriptionItem::Event(e)))) = &polled {
            *self.shared.last.lock() = e.position;
        }
        polled
    }
}

/// Codes that no other node would answer differently: the stream ends with them.
fn is_fatal(code: Code) -> bool {
    matches!(
        code,
        Code::OutOfRange
            | Code::InvalidArgument
            | Code::NotFound
            | Code::Unimplemented
            | Code::PermissionDenied
            | Code::Unauthenticated
    )
}

fn fatal(e: &ClientError) -> bool {
    match e.code() {
        Some(c) => is_fatal(c),
        None => !e.is_retryable(),
    }
}

/// Whether a node refused a resumed start as beyond the committed log. What was delivered
/// was committed, so such a node has not yet learnt the latest commit (an election is under
/// way): another node, or the same one a moment later, will serve it.
fn lags_behind(e: &ClientError) -> bool {
    matches!(e, ClientError::Status { status }
        if status.code() == Code::InvalidArgument && status.message().contains("start.after"))
}

/// The state behind a [`Subscription`].
struct Driver {
    options: SubscribeOptions,
    connector: Connector,
    endpoints: Vec<String>,
    call_timeout: Duration,
    shared: Arc<Shared>,
    cursor: Cursor,
    /// The open stream and the node serving it.
    stream: Option<(String, Streaming<pb::SubscribeResponse>)>,
    /// Items of the last frame not yet handed on.
    pending: VecDeque<SubscriptionItem>,
    /// The nodes left to try in this round.
    queue: VecDeque<String>,
    turn: usize,
    last_failed: Option<String>,
    leader_hint: Option<String>,
    /// The durable consumer exists (a stream for it was opened, or a node said so).
    consumer_known: bool,
    /// A stream was opened before (the next one is a reconnect).
    opened: bool,
    /// Since when no node has served a frame.
    failing_since: Option<Instant>,
    last_error: String,
    backoff: Backoff,
    done: bool,
}

impl Driver {
    async fn next(&mut self) -> Option<Result<SubscriptionItem, ClientError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            let Some((addr, stream)) = self.stream.as_mut() else {
                if let Err(e) = self.open().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            let addr = addr.clone();
            let silence = self.options.silence_limit();
            let failure = match tokio::time::timeout(silence, stream.message()).await {
                Ok(Ok(Some(frame))) => {
                    self.failing_since = None;
                    self.backoff = Backoff::new();
                    self.accept(frame);
                    continue;
                }
                Ok(Ok(None)) => format!("{addr}: the stream ended"),
                Ok(Err(status)) => {
                    if is_fatal(status.code()) {
                        self.done = true;
                        return Some(Err(status.into()));
                    }
                    self.learn(&status);
                    format!("{addr}: {}", ClientError::from(status))
                }
                Err(_) => format!("{addr}: no frame for {} ms", silence.as_millis()),
            };
            tracing::warn!(node = %addr, reason = %failure, "subscription stream failed; resuming elsewhere");
            self.stream = None;
            self.failed(addr, failure);
        }
    }

    fn failed(&mut self, addr: String, reason: String) {
        self.failing_since.get_or_insert_with(Instant::now);
        self.last_failed = Some(addr);
        self.last_error = reason;
        *self.shared.node.lock() = None;
    }

    fn learn(&mut self, status: &Status) {
        if let Some(l) = api_metadata::leader_hint(status.metadata()) {
            self.leader_hint = Some(l.to_string());
        }
    }

    /// Hands a frame's items on, dropping events already handed on.
    fn accept(&mut self, frame: pb::SubscribeResponse) {
        use pb::subscribe_response::Frame;
        match frame.frame {
            Some(Frame::Events(batch)) => {
                for e in batch.events {
                    if self.cursor.accept_event(&e) {
                        self.pending.push_back(SubscriptionItem::Event(e));
                    } else {
                        self.shared.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Frame::Progress(p)) => {
                self.cursor.progress(&p);
                self.pending.push_back(SubscriptionItem::Progress(p));
            }
            Some(Frame::Snapshot(s)) if self.cursor.accept_snapshot(&s) => {
                self.pending.push_back(SubscriptionItem::Snapshot(s));
            }
            Some(Frame::Snapshot(_)) | None => {}
        }
    }

    /// Opens a stream on the next node that will serve it, backing off between attempts,
    /// until one does or the options' `resume_for` has passed since the last frame.
    async fn open(&mut self) -> Result<(), ClientError> {
        loop {
            if let Some(since) = self.failing_since {
                if since.elapsed() >= self.options.resume_for {
                    return Err(ClientError::GaveUp {
                        tried_for: since.elapsed(),
                        last: self.last_error.clone(),
                    });
                }
            }
            let start = self.cursor.resume_start(self.consumer_known)?;
            let choosing = Instant::now();
            let Some(addr) = self.next_node().await else {
                return Err(ClientError::BadEndpoint("no endpoints given".into()));
            };
            let chosen_in = choosing.elapsed();
            let resuming = self.opened && matches!(start, Some(Start::After(_)));
            let opening = Instant::now();
            match self.try_open(&addr, start).await {
                Ok(stream) => {
                    if self.opened {
                        self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            node = %addr,
                            after = ?self.cursor.last_event(),
                            choosing_ms = chosen_in.as_millis() as u64,
                            opening_ms = opening.elapsed().as_millis() as u64,
                            "subscription resumed"
                        );
                    }
                    self.opened = true;
                    // Roles may have changed by the next failure: ask again then.
                    self.queue.clear();
                    self.consumer_known |= self.options.consumer.is_some();
                    *self.shared.node.lock() = Some(addr.clone());
                    self.stream = Some((addr, stream));
                    return Ok(());
                }
                Err(e) if fatal(&e) && !(resuming && lags_behind(&e)) => return Err(e),
                Err(e) => {
                    if let ClientError::Status { status } = &e {
                        self.learn(status);
                    }
                    self.failed(addr.clone(), format!("{addr}: {e}"));
                    // Another node of this round may serve it at once (one that has applied
                    // further than a node restarted a moment ago): wait only between rounds.
                    if !self.queue.is_empty() {
                        tracing::debug!(
                            node = %addr,
                            error = %e,
                            choosing_ms = chosen_in.as_millis() as u64,
                            opening_ms = opening.elapsed().as_millis() as u64,
                            "subscription not opened; trying the next node"
                        );
                        continue;
                    }
                    let wait = self.backoff.next(e.retry_after());
                    tracing::debug!(node = %addr, error = %e, ?wait, "subscription not opened");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The next node to try: the next of this round, or the first of a new round ordered by
    /// what the nodes say of their roles now.
    async fn next_node(&mut self) -> Option<String> {
        if self.queue.is_empty() {
            let roles = if self.options.prefer_followers {
                let wait = self.call_timeout.min(Duration::from_secs(1));
                nodes::roles(
                    &self.connector,
                    &self.endpoints,
                    wait,
                    self.leader_hint.as_deref(),
                )
                .await
            } else {
                self.endpoints
                    .iter()
                    .map(|a| (a.clone(), Role::Unknown))
                    .collect()
            };
            self.queue = nodes::order(
                &roles,
                self.turn,
                self.last_failed.as_deref(),
                self.options.prefer_followers,
            )
            .into();
            self.turn += 1;
        }
        self.queue.pop_front()
    }

    async fn try_open(
        &mut self,
        addr: &str,
        start: Option<Start>,
    ) -> Result<Streaming<pb::SubscribeResponse>, ClientError> {
        let mut feed = self.connector.feed_at(addr)?;
        let mut start = start;
        if let (Some(name), true, false) =
            (&self.options.consumer, start.is_some(), self.consumer_known)
        {
            // An earlier attempt may have created the consumer before failing; a start may
            // only be given to create one.
            if self.opened || self.failing_since.is_some() {
                let mut req = tonic::Request::new(pb::GetConsumerRequest { name: name.clone() });
                req.set_timeout(self.call_timeout);
                if feed.get_consumer(req).await.is_ok() {
                    self.consumer_known = true;
                    start = None;
                }
            }
        }
        // No deadline on the request: it would end the stream. Only the opening is bounded.
        let req = tonic::Request::new(self.options.request(start.as_ref()));
        match tokio::time::timeout(self.call_timeout, feed.subscribe(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {} ms",
                self.call_timeout.as_millis()
            ))
            .into()),
        }
    }
}
