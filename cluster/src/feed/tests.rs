//! The `Feed` service on a running single-node cluster, over gRPC: every start kind and
//! mode, filters, progress, bad requests, a start older than the journal, and a reader that
//! stops reading for a while.

use std::collections::BTreeSet;
use std::time::Duration;

use qastore_exchange::feed::Position;
use qastore_exchange::record::{samples, Record};
use qastore_exchange::{Command, StreamKind, SystemCommand};
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::store_client::StoreClient;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::config::NodeConfig;
use crate::convert::records::record_to_pb;
use crate::server::{start, RunningNode};

const WAIT: Duration = Duration::from_secs(20);

struct Solo {
    _dir: tempfile::TempDir,
    running: Option<RunningNode>,
    api: String,
}

impl Solo {
    async fn start(tune: impl FnOnce(&mut NodeConfig)) -> Solo {
        let dir = tempfile::tempdir().unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        let mut config = NodeConfig {
            node_id: 1,
            data_dir: dir.path().to_path_buf(),
            api_listen: any,
            raft_listen: any,
            http_listen: any,
            ..NodeConfig::default()
        };
        tune(&mut config);
        let running = start(config, true).await.unwrap();
        running.node().raft.wait_for_leader(WAIT).await.unwrap();
        let api = format!("http://{}", running.api_addr());
        Solo {
            _dir: dir,
            running: Some(running),
            api,
        }
    }

    fn running(&self) -> &RunningNode {
        self.running.as_ref().unwrap()
    }

    async fn feed(&self) -> FeedClient<Channel> {
        FeedClient::connect(self.api.clone()).await.unwrap()
    }

    /// A client whose connection takes in little before the reader reads: a reader that
    /// stops reading holds the node's sends back at once.
    async fn narrow_feed(&self) -> FeedClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(self.api.clone())
            .unwrap()
            .initial_stream_window_size(Some(16 * 1024))
            .initial_connection_window_size(Some(16 * 1024))
            .connect()
            .await
            .unwrap();
        FeedClient::new(channel)
    }

    /// Writes batch `b` (see [`batch`]); answers its log index.
    async fn write(&self, b: u64) -> u64 {
        let mut store = StoreClient::connect(self.api.clone()).await.unwrap();
        store
            .write(pb::WriteRequest {
                client_id: "feed-test".into(),
                request_id: b + 1,
                records: batch(b),
                ack: pb::AckLevel::Quorum as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .log_index
    }

    /// Proposes a system command and waits for it to be applied.
    async fn system(&self, command: SystemCommand) {
        let raft = &self.running().node().raft;
        let command = Command::System(command);
        raft.propose(crate::request(&command), WAIT).await.unwrap();
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await.unwrap();
        }
    }
}

/// Batch `b`: the sample records of every kind with ids of their own; user `u{b % 3}`,
/// instrument `IF2412` or `IF2501` by parity; every third order is left alive (no update).
fn batch(b: u64) -> Vec<pb::Record> {
    let user = format!("u{}", b % 3);
    let instrument = if b.is_multiple_of(2) {
        "IF2412"
    } else {
        "IF2501"
    };
    let order = format!("o-{b}");
    samples::records()
        .into_iter()
        .filter(|r| !b.is_multiple_of(3) || !matches!(r, Record::OrderUpdate(_)))
        .map(|mut r| {
            match &mut r {
                Record::OrderInsert(o) => {
                    o.user_id = user.clone();
                    o.order_id = order.clone();
                    o.instrument_id = instrument.into();
                }
                Record::OrderUpdate(u) => {
                    u.user_id = user.clone();
                    u.order_id = order.clone();
                }
                Record::TradeExecuted(t) => {
                    t.user_id = user.clone();
                    t.order_id = order.clone();
                    t.trade_id = format!("t-{b}");
                    t.instrument_id = instrument.into();
                }
                Record::AccountUpdate(a) => {
                    a.user_id = user.clone();
                    a.balance += b as f64;
                }
                Record::PositionUpdate(p) => {
                    p.user_id = user.clone();
                    p.instrument_id = instrument.into();
                }
                Record::Tick(t) => {
                    t.instrument_id = instrument.into();
                    t.sequence = b;
                    t.last_price += b as f64;
                }
                Record::OrderBookSnapshot(k) => {
                    k.instrument_id = instrument.into();
                    k.datetime += b as i64;
                }
            }
            record_to_pb(&r)
        })
        .collect()
}

/// A start right after `log_index:ordinal`.
fn after(log_index: u64, ordinal: u32) -> Option<pb::start_at::At> {
    Some(pb::start_at::At::After(pb::Position { log_index, ordinal }))
}

fn request(start: Option<pb::start_at::At>) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        start: start.map(|at| pb::StartAt { at: Some(at) }),
        heartbeat_ms: 200,
        ..Default::default()
    }
}

async fn open(
    feed: &mut FeedClient<Channel>,
    req: pb::SubscribeRequest,
) -> Streaming<pb::SubscribeResponse> {
    feed.subscribe(req).await.unwrap().into_inner()
}

/// What a stream sent, by kind of frame.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<pb::Event>,
    progress: Vec<pb::Progress>,
    snapshot: Vec<pb::SnapshotPart>,
    frames: usize,
}

/// Reads until `done` says so, failing after [`WAIT`].
async fn read_until(
    stream: &mut Streaming<pb::SubscribeResponse>,
    done: impl Fn(&Seen) -> bool,
) -> Seen {
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&seen) {
        let frame = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} events", seen.events.len()))
            .unwrap()
            .unwrap();
        seen.frames += 1;
        match frame.frame.unwrap() {
            pb::subscribe_response::Frame::Events(b) => seen.events.extend(b.events),
            pb::subscribe_response::Frame::Progress(p) => seen.progress.push(p),
            pb::subscribe_response::Frame::Snapshot(s) => seen.snapshot.push(s),
        }
    }
    seen
}

async fn events(stream: &mut Streaming<pb::SubscribeResponse>, n: usize) -> Vec<pb::Event> {
    read_until(stream, |s| s.events.len() >= n).await.events
}

fn position(e: &pb::Event) -> Position {
    let p = e.position.unwrap();
    Position::new(p.log_index, p.ordinal)
}

/// Positions strictly increase: in order, each once.
fn assert_in_order(events: &[pb::Event]) {
    for w in events.windows(2) {
        assert!(
            position(&w[0]) < position(&w[1]),
            "{} then {}",
            position(&w[0]),
            position(&w[1])
        );
    }
}

/// Every event of the batches at `indexes`, as written: (position, record).
fn expected(written: &[(u64, u64)]) -> Vec<(Position, pb::Record)> {
    written
        .iter()
        .flat_map(|&(b, index)| {
            batch(b)
                .into_iter()
                .enumerate()
                .map(move |(i, r)| (Position::new(index, i as u32), r))
        })
        .collect()
}

fn got(events: &[pb::Event]) -> Vec<(Position, pb::Record)> {
    events
        .iter()
        .map(|e| (position(e), e.record.clone().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_from_the_oldest_event_replays_the_journal_then_follows_new_writes_each_once() {
    let solo = Solo::start(|_| {}).await;
    let mut written = Vec::new();
    for b in 0..30 {
        written.push((b, solo.write(b).await));
    }
    let mut feed = solo.feed().await;
    let mut stream = open(&mut feed, request(Some(pb::start_at::At::Oldest(true)))).await;
    let mut seen = events(&mut stream, expected(&written).len()).await;
    for b in 30..40 {
        written.push((b, solo.write(b).await));
    }
    let total = expected(&written).len();
    seen.extend(events(&mut stream, total - seen.len()).await);
    assert_in_order(&seen);
    assert_eq!(got(&seen), expected(&written));
    assert!(seen.iter().all(|e| e.commit_time_ns > 0 && e.merged == 1));
    assert!(seen.iter().all(|e| e.result.is_some()));
    // Nothing more comes; an idle stream gets progress up to the last batch.
    let idle = read_until(&mut stream, |s| !s.progress.is_empty()).await;
    assert!(idle.events.is_empty());
    let last = written.last().unwrap().1;
    assert_eq!(idle.progress[0].applied.unwrap().log_index, last);
    assert_eq!(idle.progress[0].node_id, 1);
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_start_kind_begins_where_it_says() {
    let solo = Solo::start(|_| {}).await;
    let mut written = Vec::new();
    for b in 0..10 {
        written.push((b, solo.write(b).await));
    }
    let mut feed = solo.feed().await;
    let all = expected(&written);

    // After a position: from the next event on, even inside a batch.
    let from = Position::new(written[4].1, 2);
    let mut s = open(&mut feed, request(after(from.index, from.ordinal))).await;
    let want: Vec<_> = all.iter().filter(|(p, _)| *p > from).cloned().collect();
    assert_eq!(got(&events(&mut s, want.len()).await), want);

    // At a time: from the first batch committed at or after it.
    let mut oldest = open(&mut feed, request(Some(pb::start_at::At::Oldest(true)))).await;
    let replay = events(&mut oldest, all.len()).await;
    let sixth = replay
        .iter()
        .find(|e| position(e).index == written[6].1)
        .unwrap();
    let mut s = open(
        &mut feed,
        request(Some(pb::start_at::At::TimeNs(sixth.commit_time_ns))),
    )
    .await;
    let want: Vec<_> = all
        .iter()
        .filter(|(p, _)| p.index >= written[6].1)
        .cloned()
        .collect();
    assert_eq!(got(&events(&mut s, want.len()).await), want);

    // At the tail (also the default): only what is written after.
    let mut tail = open(&mut feed, request(Some(pb::start_at::At::Tail(true)))).await;
    let mut default = open(&mut feed, request(None)).await;
    // The streams are open once they have sent a frame (progress, when idle).
    read_until(&mut tail, |s| !s.progress.is_empty()).await;
    read_until(&mut default, |s| !s.progress.is_empty()).await;
    let index = solo.write(10).await;
    let want = expected(&[(10, index)]);
    assert_eq!(got(&events(&mut tail, want.len()).await), want);
    assert_eq!(got(&events(&mut default, want.len()).await), want);

    // Snapshot then tail: the state at one index, then every event after it.
    let mut s = open(&mut feed, request(Some(pb::start_at::At::Snapshot(true)))).await;
    let state = read_until(&mut s, |s| s.snapshot.last().is_some_and(|p| p.last)).await;
    let at = state.snapshot[0].applied_index;
    assert_eq!(at, index);
    let records: Vec<pb::Record> = state
        .snapshot
        .iter()
        .flat_map(|p| p.records.clone())
        .collect();
    let engine = solo.running().node().raft.engine().unwrap();
    let direct = qastore_exchange::feed::snapshot::read_state(
        &engine,
        &qastore_exchange::feed::EventFilter::everything(),
    )
    .unwrap();
    drop(engine);
    assert_eq!(
        records,
        direct.records.iter().map(record_to_pb).collect::<Vec<_>>()
    );
    let alive = records
        .iter()
        .filter(|r| matches!(r.kind, Some(pb::record::Kind::OrderInsert(_))))
        .count();
    assert_eq!(alive, 4, "orders 0, 3, 6 and 9 were never updated");
    let next = solo.write(11).await;
    let want = expected(&[(11, next)]);
    assert_eq!(got(&events(&mut s, want.len()).await), want);
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_select_by_kind_instrument_user_and_exchange() {
    let solo = Solo::start(|_| {}).await;
    let mut written = Vec::new();
    for b in 0..12 {
        written.push((b, solo.write(b).await));
    }
    let all = expected(&written);
    let mut feed = solo.feed().await;
    type Keep = Box<dyn Fn(&pb::Record) -> bool>;
    let cases: Vec<(pb::EventFilter, Keep)> = vec![
        (
            pb::EventFilter {
                kinds: vec![pb::RecordKind::Ticks as i32, pb::RecordKind::Trades as i32],
                ..Default::default()
            },
            Box::new(|r| {
                matches!(
                    r.kind,
                    Some(pb::record::Kind::Tick(_) | pb::record::Kind::TradeExecuted(_))
                )
            }),
        ),
        (
            pb::EventFilter {
                instruments: vec!["IF2501".into()],
                ..Default::default()
            },
            Box::new(|r| instrument_of(r) == Some("IF2501")),
        ),
        (
            pb::EventFilter {
                instrument_prefixes: vec!["CFFEX.IF24".into()],
                users: vec!["u1".into()],
                ..Default::default()
            },
            Box::new(|r| instrument_of(r) == Some("IF2412") && user_of(r) == Some("u1")),
        ),
        (
            pb::EventFilter {
                exchange: "CFFEX".into(),
                kinds: vec![pb::RecordKind::Orders as i32],
                ..Default::default()
            },
            Box::new(|r| {
                matches!(
                    r.kind,
                    Some(pb::record::Kind::OrderInsert(_) | pb::record::Kind::OrderUpdate(_))
                )
            }),
        ),
    ];
    for (filter, keep) in cases {
        let want: Vec<_> = all.iter().filter(|(_, r)| keep(r)).cloned().collect();
        assert!(!want.is_empty());
        let mut req = request(Some(pb::start_at::At::Oldest(true)));
        req.filter = Some(filter.clone());
        let mut s = open(&mut feed, req).await;
        let seen = events(&mut s, want.len()).await;
        assert_eq!(got(&seen), want, "{filter:?}");
        // Nothing else was on its way: the next frame is progress.
        let more = read_until(&mut s, |s| !s.progress.is_empty()).await;
        assert!(more.events.is_empty(), "{filter:?}");
    }
    solo.stop().await;
}

/// The instrument a record of [`batch`] is for; an order update's is its order's (order
/// `o-{b}` trades what batch `b` does).
fn instrument_of(r: &pb::Record) -> Option<&str> {
    use pb::record::Kind;
    match r.kind.as_ref()? {
        Kind::OrderInsert(o) => Some(&o.instrument_id),
        Kind::TradeExecuted(t) => Some(&t.instrument_id),
        Kind::PositionUpdate(p) => Some(&p.instrument_id),
        Kind::Tick(t) => Some(&t.instrument_id),
        Kind::OrderBookSnapshot(b) => Some(&b.instrument_id),
        Kind::OrderUpdate(u) => {
            let b: u64 = u.order_id.strip_prefix("o-")?.parse().ok()?;
            Some(if b.is_multiple_of(2) {
                "IF2412"
            } else {
                "IF2501"
            })
        }
        Kind::AccountUpdate(_) => None,
    }
}

fn user_of(r: &pb::Record) -> Option<&str> {
    use pb::record::Kind;
    match r.kind.as_ref()? {
        Kind::OrderInsert(o) => Some(&o.user_id),
        Kind::OrderUpdate(u) => Some(&u.user_id),
        Kind::TradeExecuted(t) => Some(&t.user_id),
        Kind::AccountUpdate(a) => Some(&a.user_id),
        Kind::PositionUpdate(p) => Some(&p.user_id),
        Kind::Tick(_) | Kind::OrderBookSnapshot(_) => None,
    }
}

/// An order of user `u7` on `instrument`, as the samples' order otherwise.
fn order_on(order_id: &str, exchange: &str, instrument: &str) -> Record {
    let mut r = samples::records().remove(0);
    if let Record::OrderInsert(o) = &mut r {
        o.user_id = "u7".into();
        o.order_id = order_id.into();
        o.exchange_id = exchange.into();
        o.instrument_id = instrument.into();
    }
    r
}

/// An update of user `u7`'s order `order_id`, saying `msg`.
fn update_of(order_id: &str, msg: &str) -> Record {
    Record::OrderUpdate(qastore_exchange::record::OrderUpdate {
        user_id: "u7".into(),
        order_id: order_id.into(),
        status: qastore_exchange::record::OrderStatus::Alive,
        volume_left: 1,
        last_msg: msg.into(),
        time: samples::SAMPLE_TIME,
    })
}

/// Writes `records` as one batch; answers its events as written, at their positions.
async fn write_records(
    solo: &Solo,
    request_id: u64,
    records: Vec<Record>,
) -> Vec<(Position, pb::Record)> {
    let records: Vec<pb::Record> = records.iter().map(record_to_pb).collect();
    let mut store = StoreClient::connect(solo.api.clone()).await.unwrap();
    let index = store
        .write(pb::WriteRequest {
            client_id: "feed-order-test".into(),
            request_id,
            records: records.clone(),
            ack: pb::AckLevel::Quorum as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .log_index;
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (Position::new(index, i as u32), r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_on_one_instrument_gets_its_orders_inserts_and_updates_live_and_from_the_journal()
{
    // A ring of a few events: the history below has left it, so the stream from the oldest
    // event reads it from the journal.
    let solo = Solo::start(|c| {
        c.feed.live_buffer_events = 8;
    })
    .await;
    let mut history = Vec::new();
    history.extend(
        write_records(
            &solo,
            1,
            vec![
                order_on("rb-1", "SHFE", "rb2501"),
                order_on("cu-1", "SHFE", "cu2501"),
            ],
        )
        .await,
    );
    // Updates in a batch of their own, so their orders' places are read from the engine;
    // `late` is updated before it is inserted: the parked update has no known order.
    let parked = update_of("late", "parked");
    history.extend(
        write_records(
            &solo,
            2,
            vec![
                update_of("rb-1", "rb first"),
                update_of("cu-1", "cu first"),
                parked.clone(),
            ],
        )
        .await,
    );
    history.extend(write_records(&solo, 3, vec![order_on("late", "SHFE", "rb2501")]).await);
    let filler = (0..16)
        .map(|i| {
            let mut r = samples::first(|r| matches!(r, Record::Tick(_))).unwrap();
            if let Record::Tick(t) = &mut r {
                t.sequence = 1000 + i;
            }
            r
        })
        .collect();
    write_records(&solo, 4, filler).await;
    // rb-1's insert and update and late's insert; not late's parked update, nothing of cu-1.
    let want_history: Vec<_> = [0, 2, 5].iter().map(|&i| history[i].clone()).collect();
    assert_eq!(history[4].1, record_to_pb(&parked));

    let filter = pb::EventFilter {
        kinds: vec![pb::RecordKind::Orders as i32],
        instruments: vec!["SHFE.rb2501".into()],
        ..Default::default()
    };
    let mut feed = solo.feed().await;
    let mut req = request(Some(pb::start_at::At::Oldest(true)));
    req.filter = Some(filter.clone());
    let mut replay = open(&mut feed, req).await;
    let mut req = request(Some(pb::start_at::At::Tail(true)));
    req.filter = Some(filter);
    let mut live = open(&mut feed, req).await;
    read_until(&mut live, |s| !s.progress.is_empty()).await;
    let seen = events(&mut replay, want_history.len()).await;
    assert_eq!(got(&seen), want_history);

    // Live: updates of orders inserted long ago (placed from the engine), then an order
    // inserted and updated in one batch (placed from its insert).
    let later = write_records(
        &solo,
        5,
        vec![
            update_of("cu-1", "cu second"),
            update_of("rb-1", "rb second"),
            update_of("late", "late first"),
        ],
    )
    .await;
    let want_later: Vec<_> = later.iter().skip(1).cloned().collect();
    assert_eq!(got(&events(&mut live, 2).await), want_later);
    let last = write_records(
        &solo,
        6,
        vec![
            order_on("rb-2", "SHFE", "rb2501"),
            order_on("cu-2", "SHFE", "cu2501"),
            update_of("cu-2", "cu third"),
            update_of("rb-2", "rb third"),
        ],
    )
    .await;
    let want_last: Vec<_> = vec![last[0].clone(), last[3].clone()];
    assert_eq!(got(&events(&mut live, 2).await), want_last);
    // The replaying stream goes on with the same.
    let more = events(&mut replay, 4).await;
    let mut want_more = want_later.clone();
    want_more.extend(want_last.clone());
    assert_eq!(got(&more), want_more);
    // Nothing else was on its way for either.
    for s in [&mut live, &mut replay] {
        let idle = read_until(s, |s| !s.progress.is_empty()).await;
        assert!(idle.events.is_empty());
    }
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_streams_deliver_per_window_and_conflated_ones_merge_per_key() {
    let solo = Solo::start(|_| {}).await;
    let mut written = Vec::new();
    for b in 0..20 {
        written.push((b, solo.write(b).await));
    }
    let all = expected(&written);
    let mut feed = solo.feed().await;

    let mut req = request(Some(pb::start_at::At::Oldest(true)));
    req.mode = pb::DeliveryMode::Batched as i32;
    req.window_ms = 50;
    req.max_frame_events = 32;
    let mut s = open(&mut feed, req).await;
    let seen = read_until(&mut s, |s| s.events.len() >= all.len()).await;
    assert_eq!(got(&seen.events), all);
    // Each window ends with progress.
    let more = read_until(&mut s, |s| s.progress.len() >= 2).await;
    assert!(more.events.is_empty());

    let mut req = request(Some(pb::start_at::At::Oldest(true)));
    req.mode = pb::DeliveryMode::Conflated as i32;
    req.window_ms = 200;
    let mut s = open(&mut feed, req).await;
    // Everything is already there: one window holds all of it.
    let seen = read_until(&mut s, |s| !s.progress.is_empty()).await.events;
    assert_in_order(&seen);
    let merged: u32 = seen.iter().map(|e| e.merged).sum();
    assert_eq!(merged as usize, all.len(), "every event is counted once");
    let ticks: Vec<_> = seen
        .iter()
        .filter(|e| {
            matches!(
                e.record.as_ref().unwrap().kind,
                Some(pb::record::Kind::Tick(_))
            )
        })
        .collect();
    assert_eq!(ticks.len(), 2, "the latest tick of each instrument");
    assert!(ticks.iter().all(|t| t.merged == 10));
    let last_tick = all
        .iter()
        .rfind(|(_, r)| matches!(r.kind, Some(pb::record::Kind::Tick(_))))
        .unwrap();
    assert!(ticks
        .iter()
        .any(|t| position(t) == last_tick.0 && t.record.as_ref() == Some(&last_tick.1)));
    let trades = seen
        .iter()
        .filter(|e| {
            matches!(
                e.record.as_ref().unwrap().kind,
                Some(pb::record::Kind::TradeExecuted(_))
            )
        })
        .count();
    assert_eq!(trades, 20, "trades are never merged");
    let accounts = seen
        .iter()
        .filter(|e| {
            matches!(
                e.record.as_ref().unwrap().kind,
                Some(pb::record::Kind::AccountUpdate(_))
            )
        })
        .count();
    assert_eq!(accounts, 3, "one per user");
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_refused_naming_the_field() {
    let solo = Solo::start(|_| {}).await;
    let index = solo.write(0).await;
    let mut feed = solo.feed().await;
    let base = || request(Some(pb::start_at::At::Oldest(true)));
    let cases: Vec<(pb::SubscribeRequest, &str)> = vec![
        (
            pb::SubscribeRequest {
                filter: Some(pb::EventFilter {
                    kinds: vec![99],
                    ..Default::default()
                }),
                ..base()
            },
            "filter.kinds",
        ),
        (
            pb::SubscribeRequest {
                filter: Some(pb::EventFilter {
                    users: vec![String::new()],
                    ..Default::default()
                }),
                ..base()
            },
            "filter.users",
        ),
        (
            pb::SubscribeRequest {
                filter: Some(pb::EventFilter {
                    instruments: vec!["IF\u{1}".into()],
                    ..Default::default()
                }),
                ..base()
            },
            "filter.instruments",
        ),
        (pb::SubscribeRequest { mode: 7, ..base() }, "mode"),
        (
            pb::SubscribeRequest {
                window_ms: 600_000,
                ..base()
            },
            "window_ms",
        ),
        (
            pb::SubscribeRequest {
                heartbeat_ms: 1,
                ..base()
            },
            "heartbeat_ms",
        ),
        (
            pb::SubscribeRequest {
                max_frame_events: 1 << 20,
                ..base()
            },
            "max_frame_events",
        ),
        (
            request(Some(pb::start_at::At::Oldest(false))),
            "start.oldest",
        ),
        (request(after(index + 1_000, 0)), "start.after"),
    ];
    for (req, field) in cases {
        let e = feed.subscribe(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_older_than_the_journal_is_refused_with_the_earliest_position() {
    let solo = Solo::start(|_| {}).await;
    let mut written = Vec::new();
    for b in 0..6 {
        written.push((b, solo.write(b).await));
    }
    let cutoff = written[3].1;
    solo.system(SystemCommand::Retain {
        drop_days_before: None,
        drop_journal_before: Some(cutoff),
    })
    .await;
    let mut feed = solo.feed().await;
    let e = feed
        .subscribe(request(after(written[1].1, 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    let earliest = Position::new(cutoff, 0).to_string();
    assert!(e.message().contains(&earliest), "{}", e.message());
    assert_eq!(
        e.metadata().get(api_metadata::EARLIEST_POSITION).unwrap(),
        earliest.as_str()
    );
    // The oldest start begins where the journal now does.
    let mut s = open(&mut feed, request(Some(pb::start_at::At::Oldest(true)))).await;
    let want = expected(&written[3..]);
    assert_eq!(got(&events(&mut s, want.len()).await), want);
    // Right before the cut-off is still complete.
    let mut s = open(&mut feed, request(after(cutoff - 1, u32::MAX))).await;
    assert_eq!(got(&events(&mut s, want.len()).await), want);
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticks_and_trades_older_than_the_journal_replay_from_parquet_then_follow_live() {
    let solo = Solo::start(|_| {}).await;
    let mut written = Vec::new();
    for b in 0..6 {
        written.push((b, solo.write(b).await));
    }
    for stream in [StreamKind::Ticks, StreamKind::Trades] {
        solo.system(SystemCommand::ConvertDay {
            stream,
            trading_day: 20241202,
        })
        .await;
    }
    solo.system(SystemCommand::Retain {
        drop_days_before: None,
        drop_journal_before: Some(written[4].1),
    })
    .await;
    let is_tick_or_trade = |r: &pb::Record| {
        matches!(
            r.kind,
            Some(pb::record::Kind::Tick(_) | pb::record::Kind::TradeExecuted(_))
        )
    };
    let mut want: Vec<_> = expected(&written)
        .into_iter()
        .filter(|(_, r)| is_tick_or_trade(r))
        .collect();
    let mut feed = solo.feed().await;
    let mut req = request(Some(pb::start_at::At::Oldest(true)));
    req.filter = Some(pb::EventFilter {
        kinds: vec![pb::RecordKind::Ticks as i32, pb::RecordKind::Trades as i32],
        ..Default::default()
    });
    let mut s = open(&mut feed, req.clone()).await;
    let replayed = events(&mut s, want.len()).await;
    assert_eq!(got(&replayed), want);
    // At a time the journal no longer holds: from the first batch committed then, found in
    // the parts' commit times.
    let third = replayed
        .iter()
        .find(|e| e.position.unwrap().log_index >= written[2].1)
        .unwrap();
    let mut at_time = req.clone();
    at_time.start = Some(pb::StartAt {
        at: Some(pb::start_at::At::TimeNs(third.commit_time_ns)),
    });
    let from = want
        .iter()
        .position(|(p, _)| p.index >= position(third).index)
        .unwrap();
    let mut t = open(&mut feed, at_time).await;
    assert_eq!(got(&events(&mut t, want.len() - from).await), want[from..]);
    // Then live, with no gap.
    let live = [(6, solo.write(6).await)];
    let more: Vec<_> = expected(&live)
        .into_iter()
        .filter(|(_, r)| is_tick_or_trade(r))
        .collect();
    assert_eq!(got(&events(&mut s, more.len()).await), more);
    want.extend(more);
    // From a position the journal dropped, in the middle of the converted history.
    req.start = Some(pb::StartAt {
        at: after(written[1].1, u32::MAX),
    });
    let from = want
        .iter()
        .position(|(p, _)| p.index > written[1].1)
        .unwrap();
    let mut s = open(&mut feed, req).await;
    assert_eq!(got(&events(&mut s, want.len() - from).await), want[from..]);
    // Every kind: only the journal holds the others, so the stream starts at its floor.
    let e = feed
        .subscribe(request(after(written[1].1, 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_that_stops_reading_falls_back_to_the_journal_and_still_gets_every_event_once() {
    let solo = Solo::start(|c| {
        c.feed.live_buffer_events = 64;
        c.feed.stream_buffer_events = 32;
    })
    .await;
    let mut feed = solo.narrow_feed().await;
    let mut slow = open(&mut feed, request(Some(pb::start_at::At::Tail(true)))).await;
    read_until(&mut slow, |s| !s.progress.is_empty()).await;
    let mut written = Vec::new();
    for b in 0..300 {
        written.push((b, solo.write(b).await));
    }
    let live = solo.running().node().raft.app().live().clone();
    assert!(live.held().0 <= 64 + 7, "the live buffer stays bounded");
    let want = expected(&written);
    let seen = events(&mut slow, want.len()).await;
    assert_eq!(got(&seen), want);
    // And it is live again.
    let index = solo.write(301).await;
    let want = expected(&[(301, index)]);
    assert_eq!(got(&events(&mut slow, want.len()).await), want);
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_end_when_the_node_shuts_down() {
    let solo = Solo::start(|_| {}).await;
    solo.write(0).await;
    let mut feed = solo.feed().await;
    let mut s = open(&mut feed, request(Some(pb::start_at::At::Oldest(true)))).await;
    events(&mut s, batch(0).len()).await;
    let t0 = std::time::Instant::now();
    solo.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown did not wait for the stream"
    );
    let ended = loop {
        match s.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    match ended {
        Err(e) => assert!(
            matches!(
                e.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "{e:?}"
        ),
        Ok(None) => {}
        Ok(Some(_)) => unreachable!(),
    }
}

#[test]
fn sample_batches_differ_and_keep_their_shape() {
    let ids: BTreeSet<String> = (0..6)
        .map(|b| match &batch(b)[0].kind {
            Some(pb::record::Kind::OrderInsert(o)) => o.order_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(batch(0).len(), 6);
    assert_eq!(batch(1).len(), 7);
}
