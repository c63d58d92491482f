//! One subscription's stream: catch up from the journal, follow the live feed, deliver in the
//! stream's mode, send progress when idle.
//!
//! The stream keeps a cursor: every event matching its filter up to the cursor has been handed
//! to its mode (sent at once when realtime, held for the window otherwise). It reads the live
//! feed while the feed holds what follows the cursor and not too much of it waits; otherwise
//! it reads the journal in bounded steps on the blocking pool (a stream of ticks and trades
//! reads Parquet below the journal's floor, see `archive`), then joins the live feed again.
//! Either way it takes only events after its cursor, so moving between them neither skips nor
//! repeats an event. Nothing here ever makes applying wait: a stream that cannot send waits on
//! its own channel, and the live feed moves on without it.
//!
//! A filter with instrument or exchange parts matches an order update on its order's place:
//! from an insert in the same read, else one point read of the engine per order, on the
//! blocking pool (the journal read does it in its own blocking step).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use qastore_exchange::feed::archive::{self, OpenParts, Source};
use qastore_exchange::feed::conflate::Conflator;
use qastore_exchange::feed::{
    journal, order_place, CommittedBatch, EventFilter, OrderPlaces, Position,
};
use qastore_lsm::Engine;
use qastore_proto::frames::SubscribeFrame;
use qastore_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;

use super::convert::{batch_encoded, conflated_encoded, event_encoded, position_to_pb};
use super::live::{LiveBatch, LiveFeed, LiveRead};
use super::metrics as feed_metrics;
use crate::error::ApiError;
use crate::node::Node;

/// Events one step looks at, from the live feed or the journal.
const STEP_EVENTS: usize = 8192;
/// Parquet rows a read of ticks and trades that the journal dropped decodes at least (whole
/// windows of overlapping row groups, half an hour of each part they reach).
const ARCHIVE_WINDOW_ROWS: u64 = 1 << 16;

/// How a stream delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every event as soon as it is applied.
    Realtime,
    /// Every event, one delivery per window.
    Batched(Duration),
    /// The latest state per key, one delivery per window.
    Conflated(Duration),
}

/// What a subscriber asked for, checked.
pub struct StreamSpec {
    /// Which events.
    pub filter: EventFilter,
    /// How they are delivered.
    pub mode: Mode,
    /// How long an idle stream waits before a progress frame.
    pub heartbeat: Duration,
    /// The most events in one frame.
    pub max_frame_events: usize,
    /// Events that may wait for this stream in the live feed before it reads the journal.
    pub max_pending_events: u64,
    /// The same in bytes.
    pub max_pending_bytes: u64,
    /// Told the last position delivered after each frame (a durable consumer's streams).
    pub on_delivered: Option<Box<dyn Fn(Position) + Send + Sync>>,
}

impl std::fmt::Debug for StreamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSpec")
            .field("filter", &self.filter)
            .field("mode", &self.mode)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

/// Where a stream sends its frames.
pub type FrameSender = mpsc::Sender<Result<SubscribeFrame, Status>>;

/// An event ready to send: its position and its encoding in the API's form.
struct Ready {
    position: Position,
    bytes: Bytes,
}

/// Why a stream ended.
enum End {
    /// The subscriber went away.
    Gone,
    /// It ends with this status.
    Fail(ApiError),
}

impl From<ApiError> for End {
    fn from(e: ApiError) -> Self {
        End::Fail(e)
    }
}

/// A journal read that started after `after`.
struct JournalFetch {
    after: Position,
    handle: tokio::task::JoinHandle<qastore_exchange::Result<Result<Fetched, Position>>>,
}

/// What a journal read found: the applied index when it began, the events, (unless the
/// stream conflates) the events of each batch encoded in the API's form, and whether it
/// reached the journal's end.
struct Fetched {
    applied: u64,
    read: journal::JournalRead,
    encoded: Vec<Vec<Bytes>>,
    complete: bool,
}

/// The stream's state between steps.
struct Stream {
    node: Arc<Node>,
    live: Arc<LiveFeed>,
    spec: StreamSpec,
    tx: FrameSender,
    /// Every matching event up to here was handed to the mode.
    cursor: Position,
    /// Every matching event up to here was sent.
    delivered: Position,
    /// The position of the last event sent, if any.
    last_event: Option<Position>,
    on_journal: bool,
    last_sent: Instant,
    window_end: Instant,
    frame: Vec<Ready>,
    held: Vec<Ready>,
    conflator: Conflator,
    /// The next journal read, started while the previous one is sent.
    prefetch: Option<JournalFetch>,
    /// The Parquet parts the stream's reads below the journal's floor go through, and the
    /// engine they were opened from (a snapshot install replaces it).
    archive: Arc<Mutex<(Weak<Engine>, OpenParts)>>,
    /// The commit time of the last event taken.
    taken_commit_ns: i64,
    gauge: feed_metrics::StreamGauge,
}

/// Runs a stream from `cursor` (exclusive) until the subscriber goes away, the node stops
/// (`stopped`), or the events it needs have left the journal.
pub async fn run(
    node: Arc<Node>,
    live: Arc<LiveFeed>,
    spec: StreamSpec,
    cursor: Position,
    tx: FrameSender,
    mut stopped: watch::Receiver<bool>,
) {
    let now = Instant::now();
    let window = match spec.mode {
        Mode::Realtime => Duration::ZERO,
        Mode::Batched(w) | Mode::Conflated(w) => w,
    };
    let mut s = Stream {
        node,
        live,
        spec,
        tx,
        cursor,
        delivered: cursor,
        last_event: None,
        on_journal: false,
        last_sent: now,
        window_end: now + window,
        frame: Vec::new(),
        held: Vec::new(),
        conflator: Conflator::new(),
        prefetch: None,
        archive: Arc::new(Mutex::new((Weak::new(), OpenParts::new()))),
        taken_commit_ns: 0,
        gauge: feed_metrics::StreamGauge::open(),
    };
    let ended = s.drive(&mut stopped, window).await;
    if let Err(End::Fail(e)) = ended {
        if matches!(e, ApiError::OutOfRange { .. }) {
            feed_metrics::stream_cut();
        }
        tracing::info!(error = %e, cursor = %s.cursor, "subscription ended");
        let _ = s.tx.send(Err(e.into())).await;
    }
}

impl Stream {
    async fn drive(
        &mut self,
        stopped: &mut watch::Receiver<bool>,
        window: Duration,
    ) -> Result<(), End> {
        let mut marks = self.live.subscribe();
        loop {
            if *stopped.borrow() {
                return Err(ApiError::Unavailable("the node is shutting down".into()).into());
            }
            marks.borrow_and_update();
            let moved = if self.window_full() {
                false
            } else {
                self.step().await?
            };
            self.gauge
                .lag()
                .set(self.cursor.index, self.taken_commit_ns);
            let now = Instant::now();
            if !matches!(self.spec.mode, Mode::Realtime) && now >= self.window_end {
                self.end_window().await?;
                self.window_end = now + window;
            }
            if moved && self.cursor < Position::end_of(self.live.mark().index) {
                // More is there already (catching up): go on after letting others run.
                tokio::task::yield_now().await;
                continue;
            }
            if matches!(self.spec.mode, Mode::Realtime) {
                self.flush_frame().await?;
                self.delivered = self.cursor;
                self.report_delivered();
            }
            if Instant::now() >= self.last_sent + self.spec.heartbeat {
                self.send_progress().await?;
            }
            let mut wake = self.last_sent + self.spec.heartbeat;
            if !matches!(self.spec.mode, Mode::Realtime) {
                wake = wake.min(self.window_end);
            }
            tokio::select! {
                _ = marks.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
                changed = stopped.changed() => {
                    // The node's stop signal is gone with the node: stop too.
                    if changed.is_err() {
                        return Err(ApiError::Unavailable("the node is shutting down".into()).into());
                    }
                }
                _ = self.tx.closed() => return Err(End::Gone),
            }
        }
    }

    /// A batched stream holding as many events as it may stops reading until its window ends.
    fn window_full(&self) -> bool {
        matches!(self.spec.mode, Mode::Batched(_))
            && self.held.len() as u64 >= self.spec.max_pending_events
    }

    /// Takes what follows the cursor from the live feed or the journal. Returns whether the
    /// cursor moved.
    async fn step(&mut self) -> Result<bool, End> {
        let before = self.cursor;
        // A conflated stream never falls behind for its own buffer: it conflates more.
        let (max_pending, max_bytes) = match self.spec.mode {
            Mode::Conflated(_) => (u64::MAX, u64::MAX),
            _ => (self.spec.max_pending_events, self.spec.max_pending_bytes),
        };
        match self
            .live
            .read_after(self.cursor, STEP_EVENTS, max_pending, max_bytes)
        {
            LiveRead::Batches { batches, through } => {
                self.prefetch = None;
                if self.on_journal {
                    self.on_journal = false;
                    tracing::debug!(cursor = %self.cursor, "subscription rejoined the live feed");
                }
                let places = self.live_places(&batches).await?;
                for lb in batches {
                    let encoded = lb.events_encoded();
                    for (e, bytes) in lb.batch.events.iter().zip(encoded) {
                        let position = lb.batch.position_of(e);
                        if position <= self.cursor {
                            continue;
                        }
                        let place = places.for_event(&self.spec.filter, &e.record, e.outcome);
                        if !self.spec.filter.matches_with(&e.record, place) {
                            continue;
                        }
                        self.hand_over(position, &lb.batch, e, || bytes.clone())
                            .await?;
                    }
                }
                self.cursor = self.cursor.max(through);
            }
            LiveRead::Behind | LiveRead::Lagging => {
                if !self.on_journal {
                    self.on_journal = true;
                    feed_metrics::moved_to_journal();
                    tracing::debug!(cursor = %self.cursor, "subscription reads the journal");
                }
                self.journal_step().await?;
            }
        }
        Ok(self.cursor > before)
    }

    /// The node's engine, once it is there.
    async fn engine(&self) -> Arc<Engine> {
        loop {
            match self.node.raft.engine() {
                Ok(e) => break e,
                // A snapshot is being installed: the engine is back shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The places the filter matches the order updates of `batches` on (those after the
    /// cursor): learned from the inserts there, the rest read from the engine on the blocking
    /// pool, never on the runtime's threads. A filter without instrument or exchange parts
    /// reads nothing.
    async fn live_places(&self, batches: &[Arc<LiveBatch>]) -> Result<OrderPlaces, End> {
        let mut places = OrderPlaces::new();
        if !self.spec.filter.needs_order_place() {
            return Ok(places);
        }
        let events = || {
            batches.iter().flat_map(|lb| {
                lb.batch
                    .events
                    .iter()
                    .filter(|e| lb.batch.position_of(e) > self.cursor)
            })
        };
        for e in events() {
            places.learn(&e.record, e.outcome);
        }
        let missing = places.missing(&self.spec.filter, events().map(|e| (&e.record, e.outcome)));
        if missing.is_empty() {
            return Ok(places);
        }
        let engine = self.engine().await;
        let places = tokio::task::spawn_blocking(move || {
            for (user, order_id) in &missing {
                if let Some(place) = order_place::stored(&engine, user, order_id)? {
                    places.insert(user, order_id, place);
                }
            }
            Ok::<_, qastore_exchange::Error>(places)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)?;
        Ok(places)
    }

    async fn journal_step(&mut self) -> Result<(), End> {
        let fetch = match self.prefetch.take() {
            Some(f) if f.after == self.cursor => f,
            _ => self.start_fetch(self.cursor).await,
        };
        let fetched = fetch
            .handle
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::from)?;
        let Fetched {
            applied,
            read,
            encoded,
            complete,
        } = match fetched {
            Ok(f) => f,
            Err(earliest) => {
                return Err(ApiError::OutOfRange {
                    message: format!(
                        "the stream fell behind: events after {} have left the journal",
                        self.cursor
                    ),
                    earliest,
                    last_delivered: Some(self.delivered),
                }
                .into())
            }
        };
        // The next part is read on the blocking pool while this one is sent.
        if let (false, Some(through)) = (complete, read.covered_through) {
            self.prefetch = Some(self.start_fetch(through).await);
        }
        let mut encoded = encoded.into_iter();
        for batch in &read.batches {
            let mut ready = encoded.next().unwrap_or_default().into_iter();
            for e in &batch.events {
                let position = batch.position_of(e);
                let bytes = ready.next();
                self.hand_over(position, batch, e, || {
                    bytes.unwrap_or_else(|| event_encoded(batch, e))
                })
                .await?;
            }
        }
        if let Some(through) = read.covered_through {
            self.cursor = self.cursor.max(through);
        }
        if complete {
            self.cursor = self.cursor.max(Position::end_of(applied));
        }
        Ok(())
    }

    /// Starts reading the journal after `after` on the blocking pool (Parquet where the
    /// journal dropped the ticks and trades the stream needs), the events already encoded in
    /// the API's form unless the stream conflates them.
    async fn start_fetch(&self, after: Position) -> JournalFetch {
        let engine = self.engine().await;
        let filter = self.spec.filter.clone();
        let encode = !matches!(self.spec.mode, Mode::Conflated(_));
        let parts = self.archive.clone();
        let handle = tokio::task::spawn_blocking(move || {
            // Applied first: the scan's view, taken after, holds at least everything up to it.
            let applied = engine.applied_index();
            let (read, complete) = match archive::locate(&engine, after, &filter)? {
                Err(earliest) => return Ok(Err(earliest)),
                Ok(Source::Journal) => {
                    let read = journal::read_after(&engine, after, &filter, STEP_EVENTS)?;
                    let complete = read.scanned < STEP_EVENTS;
                    (read, complete)
                }
                // The journal takes over at its floor, on a later read.
                Ok(Source::Archive { below }) => {
                    let mut guard = match parts.lock() {
                        Ok(g) => g,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    let (opened_from, open) = &mut *guard;
                    if !Weak::ptr_eq(opened_from, &Arc::downgrade(&engine)) {
                        *opened_from = Arc::downgrade(&engine);
                        *open = OpenParts::new();
                    }
                    let window = ARCHIVE_WINDOW_ROWS;
                    let read = archive::read_after(&engine, after, below, &filter, window, open)?;
                    (read, false)
                }
            };
            // A retention applied while this read ran may have dropped events it did not
            // see: the stream then cannot go on from here, whatever the read found.
            if let Err(earliest) = archive::locate(&engine, after, &filter)? {
                return Ok(Err(earliest));
            }
            let encoded = if encode {
                read.batches.iter().map(batch_encoded).collect()
            } else {
                Vec::new()
            };
            Ok(Ok(Fetched {
                applied,
                read,
                encoded,
                complete,
            }))
        });
        JournalFetch { after, handle }
    }

    /// Gives one matching event to the stream's mode.
    async fn hand_over(
        &mut self,
        position: Position,
        batch: &CommittedBatch,
        event: &qastore_exchange::feed::CommittedEvent,
        encode: impl FnOnce() -> Bytes,
    ) -> Result<(), End> {
        self.taken_commit_ns = batch.commit_ns;
        match self.spec.mode {
            Mode::Realtime => {
                self.frame.push(Ready {
                    position,
                    bytes: encode(),
                });
                self.last_event = Some(position);
                if self.frame.len() >= self.spec.max_frame_events {
                    self.flush_frame().await?;
                    self.delivered = position;
                    self.report_delivered();
                }
            }
            Mode::Batched(_) => self.held.push(Ready {
                position,
                bytes: encode(),
            }),
            Mode::Conflated(_) => self
                .conflator
                .push(position, batch.commit_ns, event.clone()),
        }
        Ok(())
    }

    /// Sends what the window gathered, then progress.
    async fn end_window(&mut self) -> Result<(), End> {
        match self.spec.mode {
            Mode::Realtime => return Ok(()),
            Mode::Batched(_) => {
                let mut held = std::mem::take(&mut self.held).into_iter().peekable();
                while held.peek().is_some() {
                    let chunk = held.by_ref().take(self.spec.max_frame_events.max(1));
                    self.send_events(chunk.collect()).await?;
                }
            }
            Mode::Conflated(_) => {
                let merged = self.conflator.take();
                for chunk in merged.chunks(self.spec.max_frame_events.max(1)) {
                    let ready = chunk
                        .iter()
                        .map(|c| Ready {
                            position: c.position,
                            bytes: conflated_encoded(c),
                        })
                        .collect();
                    self.send_events(ready).await?;
                }
            }
        }
        self.delivered = self.cursor;
        self.report_delivered();
        self.send_progress().await
    }

    async fn flush_frame(&mut self) -> Result<(), End> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.frame);
        self.send_events(events).await
    }

    async fn send_events(&mut self, events: Vec<Ready>) -> Result<(), End> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        self.last_event = Some(last.position);
        let bytes: usize = events.iter().map(|e| e.bytes.len()).sum();
        feed_metrics::events_sent(events.len(), bytes);
        let frame = SubscribeFrame::Events(events.into_iter().map(|e| e.bytes).collect());
        self.send_frame(frame).await
    }

    async fn send_progress(&mut self) -> Result<(), End> {
        let mark = self.live.mark();
        self.send(pb::subscribe_response::Frame::Progress(pb::Progress {
            applied: Some(position_to_pb(self.delivered)),
            commit_time_ns: mark.commit_ns,
            node_id: self.node.raft.id(),
        }))
        .await?;
        self.report_delivered();
        Ok(())
    }

    async fn send(&mut self, frame: pb::subscribe_response::Frame) -> Result<(), End> {
        let message = pb::SubscribeResponse { frame: Some(frame) };
        self.send_frame(SubscribeFrame::Message(message)).await
    }

    async fn send_frame(&mut self, frame: SubscribeFrame) -> Result<(), End> {
        self.tx.send(Ok(frame)).await.map_err(|_| End::Gone)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Tells a durable consumer's bookkeeping how far this stream has delivered: up to the
    /// last event sent, or further where progress said everything up to there was sent (so a
    /// consumer with a narrow filter can acknowledge past its last matching event).
    fn report_delivered(&self) {
        if let Some(report) = &self.spec.on_delivered {
            let last = self
                .last_event
                .map_or(self.delivered, |e| e.max(self.delivered));
            report(last);
        }
    }
}

/// Sends the state of a snapshot start in parts of at most `part_records` records.
pub async fn send_state(
    tx: &FrameSender,
    applied_index: u64,
    records: Vec<pb::Record>,
    part_records: usize,
) -> bool {
    let part_records = part_records.max(1);
    let mut parts = records.chunks(part_records).peekable();
    if parts.peek().is_none() {
        let frame = pb::subscribe_response::Frame::Snapshot(pb::SnapshotPart {
            applied_index,
            records: Vec::new(),
            last: true,
        });
        return tx
            .send(Ok(SubscribeFrame::Message(pb::SubscribeResponse {
                frame: Some(frame),
            })))
            .await
            .is_ok();
    }
    while let Some(part) = parts.next() {
        let frame = pb::subscribe_response::Frame::Snapshot(pb::SnapshotPart {
            applied_index,
            records: part.to_vec(),
            last: parts.peek().is_none(),
        });
        if tx
            .send(Ok(SubscribeFrame::Message(pb::SubscribeResponse {
                frame: Some(frame),
            })))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}
