//! What a subscription asks for: [`SubscribeOptions`], built step by step, and the request it
//! becomes on the wire.

use std::time::Duration;

use qastore_proto::v1 as pb;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Right after this position (exclusive).
    After(pb::Position),
    /// At the first event committed at or after this time (epoch nanoseconds).
    Time(i64),
    /// At the oldest event the journal still holds.
    Oldest,
    /// Only events applied after the stream starts.
    Tail,
    /// The current state matching the filter as of one applied index, then every event after.
    Snapshot,
}

impl Start {
    /// The start as the API spells it.
    pub fn to_proto(&self) -> pb::StartAt {
        use pb::start_at::At;
        let at = match self {
            Start::After(p) => At::After(*p),
            Start::Time(ns) => At::TimeNs(*ns),
            Start::Oldest => At::Oldest(true),
            Start::Tail => At::Tail(true),
            Start::Snapshot => At::Snapshot(true),
        };
        pb::StartAt { at: Some(at) }
    }
}

/// How events are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every event as soon as its batch is applied.
    #[default]
    Realtime,
    /// Every event, in one frame per window.
    Batched,
    /// Per window, the latest state per key (trades are never merged).
    Conflated,
}

impl Mode {
    fn to_proto(self) -> pb::DeliveryMode {
        match self {
            Mode::Realtime => pb::DeliveryMode::Realtime,
            Mode::Batched => pb::DeliveryMode::Batched,
            Mode::Conflated => pb::DeliveryMode::Conflated,
        }
    }
}

/// The heartbeat interval a node uses when none is asked for.
const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(1000);
/// The window a node uses when none is asked for.
const DEFAULT_WINDOW: Duration = Duration::from_millis(100);

/// What a subscription asks for, and how the client keeps it going. Built with the methods
/// below from [`SubscribeOptions::new`]; every part left alone takes the node's default.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeOptions {
    pub(crate) filter: pb::EventFilter,
    pub(crate) start: Option<Start>,
    pub(crate) mode: Mode,
    pub(crate) window_ms: u32,
    pub(crate) heartbeat_ms: u32,
    pub(crate) consumer: Option<String>,
    pub(crate) max_frame_events: u32,
    pub(crate) max_buffered_events: u32,
    pub(crate) max_buffered_bytes: u64,
    pub(crate) prefer_followers: bool,
    pub(crate) resume_for: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            filter: pb::EventFilter::default(),
            start: None,
            mode: Mode::Realtime,
            window_ms: 0,
            heartbeat_ms: 0,
            consumer: None,
            max_frame_events: 0,
            max_buffered_events: 0,
            max_buffered_bytes: 0,
            prefer_followers: true,
            resume_for: Duration::from_secs(30),
        }
    }
}

impl SubscribeOptions {
    /// Every event from the live tail, in real time, served by a follower when one answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these kinds of record (any of them).
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = pb::RecordKind>) -> Self {
        self.filter.kinds = kinds.into_iter().map(|k| k as i32).collect();
        self
    }

    /// Only these instruments (`IF2412` or `CFFEX.IF2412`; any of them).
    pub fn instruments(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.filter.instruments = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Only instruments whose id starts with one of these (`IF24` or `SHFE.rb`).
    pub fn prefixes(mut self, prefixes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.filter.instrument_prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Only these users (any of them).
    pub fn users(mut self, users: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.filter.users = users.into_iter().map(Into::into).collect();
        self
    }

    /// Only this exchange (`SHFE`).
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.filter.exchange = exchange.into();
        self
    }

    /// Where to start (default: the live tail, or with a known consumer, after its cursor).
    pub fn start(mut self, start: Start) -> Self {
        self.start = Some(start);
        self
    }

    /// How events are delivered.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The window of batched and conflated delivery, in milliseconds (0: the node's 100).
    pub fn window_ms(mut self, ms: u32) -> Self {
        self.window_ms = ms;
        self
    }

    /// How long an idle stream waits before a progress frame, in milliseconds (0: the node's
    /// 1,000). Three intervals without any frame count as a failed node.
    pub fn heartbeat_ms(mut self, ms: u32) -> Self {
        self.heartbeat_ms = ms;
        self
    }

    /// Stream for this durable consumer (created at the start if unknown; a known one resumes
    /// after its last acknowledged position, and then no start may be given).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// The most events one frame may carry (0: the node's 1,024).
    pub fn max_frame_events(mut self, n: u32) -> Self {
        self.max_frame_events = n;
        self
    }

    /// How many events, and how many bytes of them, may wait for this stream in the node's
    /// live buffer before it reads from the journal instead (0: the node's settings).
    pub fn buffer_limits(mut self, events: u32, bytes: u64) -> Self {
        self.max_buffered_events = events;
        self.max_buffered_bytes = bytes;
        self
    }

    /// Whether to prefer followers (default): the leader is then tried last. Without it the
    /// endpoints are tried in turn, whatever their role.
    pub fn prefer_followers(mut self, prefer: bool) -> Self {
        self.prefer_followers = prefer;
        self
    }

    /// How long to keep trying to resume on some node before giving up (default 30 s).
    pub fn resume_for(mut self, d: Duration) -> Self {
        self.resume_for = d;
        self
    }

    /// The filter as asked.
    pub fn filter(&self) -> &pb::EventFilter {
        &self.filter
    }

    /// The start as asked (`None`: the tail, or a known consumer's cursor).
    pub fn start_at(&self) -> Option<&Start> {
        self.start.as_ref()
    }

    /// The consumer, if any.
    pub fn consumer_name(&self) -> Option<&str> {
        self.consumer.as_deref()
    }

    /// After how long without any frame a node counts as failed: three heartbeat intervals,
    /// or three windows when batched or conflated frames come less often than heartbeats.
    pub fn silence_limit(&self) -> Duration {
        let heartbeat = match self.heartbeat_ms {
            0 => DEFAULT_HEARTBEAT,
            ms => Duration::from_millis(ms.into()),
        };
        let window = match (self.mode, self.window_ms) {
            (Mode::Realtime, _) => Duration::ZERO,
            (_, 0) => DEFAULT_WINDOW,
            (_, ms) => Duration::from_millis(ms.into()),
        };
        heartbeat.max(window) * 3
    }

    /// The request that opens the stream from `start` (`None`: leave the start unset).
    pub(crate) fn request(&self, start: Option<&Start>) -> pb::SubscribeRequest {
        pb::SubscribeRequest {
            filter: Some(self.filter.clone()),
            start: start.map(Start::to_proto),
            mode: self.mode.to_proto() as i32,
            window_ms: self.window_ms,
            heartbeat_ms: self.heartbeat_ms,
            consumer: self.consumer.clone().unwrap_or_default(),
            max_frame_events: self.max_frame_events,
            max_buffered_events: self.max_buffered_events,
            max_buffered_bytes: self.max_buffered_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_build_into_the_request_they_describe() {
        let o = SubscribeOptions::new()
            .kinds([pb::RecordKind::Orders, pb::RecordKind::Trades])
            .instruments(["rb2501"])
            .prefixes(["SHFE.rb"])
            .users(["u1", "u2"])
            .exchange("SHFE")
            .start(Start::Oldest)
            .mode(Mode::Batched)
            .window_ms(250)
            .heartbeat_ms(500)
            .consumer("risk")
            .max_frame_events(64)
            .buffer_limits(1000, 1 << 20);
        let r = o.request(o.start_at());
        let f = r.filter.unwrap();
        assert_eq!(
            f.kinds,
            vec![pb::RecordKind::Orders as i32, pb::RecordKind::Trades as i32]
        );
        assert_eq!(f.instruments, vec!["rb2501"]);
        assert_eq!(f.instrument_prefixes, vec!["SHFE.rb"]);
        assert_eq!(f.users, vec!["u1", "u2"]);
        assert_eq!(f.exchange, "SHFE");
        assert_eq!(r.start, Some(Start::Oldest.to_proto()));
        assert_eq!(r.mode, pb::DeliveryMode::Batched as i32);
        assert_eq!((r.window_ms, r.heartbeat_ms), (250, 500));
        assert_eq!(r.consumer, "risk");
        assert_eq!(r.max_frame_events, 64);
        assert_eq!(
            (r.max_buffered_events, r.max_buffered_bytes),
            (1000, 1 << 20)
        );
        // A batched window longer than the heartbeat sets how long silence is tolerated.
        assert_eq!(o.silence_limit(), Duration::from_millis(1500));
    }

    #[test]
    fn defaults_leave_the_start_unset_and_prefer_followers() {
        let o = SubscribeOptions::new();
        assert!(o.prefer_followers);
        assert_eq!(o.resume_for, Duration::from_secs(30));
        let r = o.request(o.start_at());
        assert_eq!(r.start, None);
        assert_eq!(r.consumer, "");
        assert_eq!(r.mode, pb::DeliveryMode::Realtime as i32);
        assert_eq!(o.silence_limit(), Duration::from_secs(3));
        let o = o.mode(Mode::Conflated).window_ms(5000).heartbeat_ms(200);
        assert_eq!(o.silence_limit(), Duration::from_secs(15));
        let at = |s: Start| s.to_proto().at.unwrap();
        let p = pb::Position {
            log_index: 7,
            ordinal: 2,
        };
        assert_eq!(at(Start::After(p)), pb::start_at::At::After(p));
        assert_eq!(at(Start::Time(9)), pb::start_at::At::TimeNs(9));
        assert_eq!(at(Start::Tail), pb::start_at::At::Tail(true));
        assert_eq!(at(Start::Snapshot), pb::start_at::At::Snapshot(true));
    }
}
