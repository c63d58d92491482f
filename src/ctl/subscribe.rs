//! `ctl subscribe`: the committed event stream, one JSON line or table row per event, resumed
//! on another node when the one serving it fails.

use clap::{Args, ValueEnum};
use futures::StreamExt;
use qastore_client::{
    parse_position, Client, ClientError, Mode, Start, SubscribeOptions, Subscription,
    SubscriptionItem,
};
use qastore_exchange::feed::EventKind;
use qastore_proto::v1 as pb;
use serde_json::{json, Value};

use super::time::{format_time, parse_time};
use super::CtlResult;
use crate::output::{outln, Format};

/// Where `--from` starts.
#[derive(Debug, Clone, PartialEq)]
pub struct FromArg(pub Start);

/// How events are delivered, as the CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Every event as soon as it is applied.
    Realtime,
    /// Every event, one frame per window.
    Batched,
    /// Per window, the latest state per key (trades are never merged).
    Conflated,
}

/// What `ctl subscribe` streams.
#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    /// Only these kinds, comma-separated: orders, trades, accounts, positions, ticks, books.
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    kinds: Vec<pb::RecordKind>,
    /// Only these instruments, comma-separated (rb2501 or SHFE.rb2501).
    #[arg(long, value_delimiter = ',')]
    instruments: Vec<String>,
    /// Only instruments starting with one of these, comma-separated (rb25 or SHFE.rb).
    #[arg(long, value_delimiter = ',')]
    prefixes: Vec<String>,
    /// Only these users, comma-separated.
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Only this exchange (SHFE).
    #[arg(long)]
    exchange: Option<String>,
    /// Where to start: tail (only new events), oldest (the oldest the journal holds; for ticks
    /// and trades only, the oldest Parquet holds),
    /// snapshot (the current state, then new events), INDEX:ORDINAL (right after that
    /// position) or a time (RFC 3339, a date, or epoch nanoseconds). Default: tail, or with a
    /// known --consumer, right after its last acknowledged position.
    #[arg(long, value_parser = parse_from)]
    from: Option<FromArg>,
    /// How events are delivered.
    #[arg(long, value_enum, default_value_t = ModeArg::Realtime)]
    mode: ModeArg,
    /// The window of batched and conflated delivery, in milliseconds (0: the node's 100).
    #[arg(long, default_value_t = 0)]
    window_ms: u32,
    /// Progress frames after this long idle, in milliseconds (0: the node's 1000).
    #[arg(long, default_value_t = 0)]
    heartbeat_ms: u32,
    /// Stream for this durable consumer (created if unknown).
    #[arg(long)]
    consumer: Option<String>,
    /// With --consumer: acknowledge after every N events (and the last one at the end).
    #[arg(long, requires = "consumer", value_parser = clap::value_parser!(u64).range(1..))]
    ack_every: Option<u64>,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Print progress frames too.
    #[arg(long)]
    show_progress: bool,
}

/// Reads a kind as the CLI names it.
fn parse_kind(s: &str) -> Result<pb::RecordKind, String> {
    let kind = EventKind::from_name(s.trim()).ok_or_else(|| {
        format!("{s:?} is not a kind: use orders, trades, accounts, positions, ticks or books")
    })?;
    Ok(match kind {
        EventKind::Orders => pb::RecordKind::Orders,
        EventKind::Trades => pb::RecordKind::Trades,
        EventKind::Accounts => pb::RecordKind::Accounts,
        EventKind::Positions => pb::RecordKind::Positions,
        EventKind::Ticks => pb::RecordKind::Ticks,
        EventKind::Books => pb::RecordKind::Books,
    })
}

/// Reads `--from`.
fn parse_from(s: &str) -> Result<FromArg, String> {
    let start = match s.trim() {
        "tail" => Start::Tail,
        "oldest" => Start::Oldest,
        "snapshot" => Start::Snapshot,
        t => match parse_position(t) {
            Some(p) => Start::After(p),
            None => Start::Time(
                parse_time(t)
                    .map_err(|_| {
                        format!(
                    "{s:?} is not a start: use tail, oldest, snapshot, INDEX:ORDINAL or a time \
                     (RFC 3339, a date, or epoch nanoseconds)"
                )
                    })?
                    .0,
            ),
        },
    };
    Ok(FromArg(start))
}

impl SubscribeArgs {
    /// The subscription these flags ask for.
    pub fn options(&self) -> SubscribeOptions {
        let mut o = SubscribeOptions::new()
            .kinds(self.kinds.iter().copied())
            .instruments(self.instruments.iter().cloned())
            .prefixes(self.prefixes.iter().cloned())
            .users(self.users.iter().cloned())
            .mode(match self.mode {
                ModeArg::Realtime => Mode::Realtime,
                ModeArg::Batched => Mode::Batched,
                ModeArg::Conflated => Mode::Conflated,
            })
            .window_ms(self.window_ms)
            .heartbeat_ms(self.heartbeat_ms);
        if let Some(e) = &self.exchange {
            o = o.exchange(e.clone());
        }
        if let Some(FromArg(start)) = &self.from {
            o = o.start(start.clone());
        }
        if let Some(c) = &self.consumer {
            o = o.consumer(c.clone());
        }
        o
    }
}

fn position_text(p: &Option<pb::Position>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{}:{}", p.log_index, p.ordinal))
}

/// The record's kind as its JSON form names it (`order_insert`, `tick`, ...).
fn record_kind(r: &Option<pb::Record>) -> String {
    r.as_ref()
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_object().and_then(|o| o.keys().next().cloned()))
        .unwrap_or_default()
}

/// Who and what a record is about, for a table row.
fn record_subject(r: &Option<pb::Record>) -> String {
    use pb::record::Kind;
    match r.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(Kind::OrderInsert(o)) => format!("{} {} {}", o.user_id, o.order_id, o.instrument_id),
        Some(Kind::OrderUpdate(o)) => format!("{} {}", o.user_id, o.order_id),
        Some(Kind::TradeExecuted(t)) => {
            format!("{} {} {}", t.user_id, t.trade_id, t.instrument_id)
        }
        Some(Kind::AccountUpdate(a)) => format!("{} {}", a.user_id, a.currency),
        Some(Kind::PositionUpdate(p)) => format!("{} {}", p.user_id, p.instrument_id),
        Some(Kind::Tick(t)) => format!("{} {}", t.instrument_id, t.last_price),
        Some(Kind::OrderBookSnapshot(b)) => b.instrument_id.clone(),
        None => String::new(),
    }
}

fn outcome(e: &pb::Event) -> String {
    e.result
        .map(|r| {
            r.outcome()
                .as_str_name()
                .trim_start_matches("OUTCOME_")
                .to_string()
        })
        .unwrap_or_default()
}

/// An event as one JSON line.
pub fn event_json(e: &pb::Event) -> Value {
    json!({
        "position": position_text(&e.position),
        "commit_time_ns": e.commit_time_ns,
        "commit_time": format_time(e.commit_time_ns),
        "outcome": outcome(e),
        "record": e.record.as_ref().and_then(|r| serde_json::to_value(r).ok()),
        "merged": e.merged,
    })
}

const ROW_HEADER: &str = "POSITION              COMMIT TIME                     OUTCOME            MERGED  KIND                 SUBJECT";

fn event_row(e: &pb::Event) -> String {
    format!(
        "{:<21} {:<31} {:<18} {:>6}  {:<20} {}",
        position_text(&e.position),
        format_time(e.commit_time_ns),
        outcome(e),
        e.merged,
        record_kind(&e.record),
        record_subject(&e.record)
    )
}

fn print_item(item: &SubscriptionItem, out: Format, show_progress: bool) {
    match (item, out) {
        (SubscriptionItem::Event(e), Format::Json) => outln!("{}", event_json(e)),
        (SubscriptionItem::Event(e), Format::Table) => outln!("{}", event_row(e)),
        (SubscriptionItem::Snapshot(s), Format::Json) => {
            for r in &s.records {
                outln!(
                    "{}",
                    json!({"snapshot_index": s.applied_index, "record": serde_json::to_value(r).ok()})
                );
            }
        }
        (SubscriptionItem::Snapshot(s), Format::Table) => {
            for r in &s.records {
                let r = Some(r.clone());
                outln!(
                    "{:<21} {:<31} {:<18} {:>6}  {:<20} {}",
                    format!("snapshot@{}", s.applied_index),
                    "",
                    "",
                    "",
                    record_kind(&r),
                    record_subject(&r)
                );
            }
        }
        (SubscriptionItem::Progress(p), _) if show_progress => match out {
            Format::Json => outln!(
                "{}",
                json!({"progress": {"applied": position_text(&p.applied), "commit_time_ns": p.commit_time_ns, "node_id": p.node_id}})
            ),
            Format::Table => outln!(
                "-- progress: applied {} on node {}",
                position_text(&p.applied),
                p.node_id
            ),
        },
        (SubscriptionItem::Progress(_), _) => {}
    }
}

/// Acknowledges `position` for the subscription's consumer.
async fn ack(stream: &Subscription, consumer: &str, position: pb::Position) -> CtlResult {
    stream
        .ack(position)
        .await
        .map(|_| ())
        .map_err(|e| format!("ack of {consumer:?}: {e}"))
}

/// `ctl subscribe`.
pub async fn run(client: &Client, args: &SubscribeArgs, out: Format) -> CtlResult {
    let mut stream = client.subscribe(args.options());
    if out == Format::Table {
        outln!("{ROW_HEADER}");
    }
    let mut events = 0u64;
    let mut unacked: Option<pb::Position> = None;
    let consumer = args.consumer.as_deref();
    if args.limit == Some(0) {
        return Ok(());
    }
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| describe(client, e))?;
        print_item(&item, out, args.show_progress);
        let SubscriptionItem::Event(e) = &item else {
            continue;
        };
        events += 1;
        unacked = e.position;
        if let (Some(c), Some(every), Some(p)) = (consumer, args.ack_every, unacked) {
            if events.is_multiple_of(every) {
                ack(&stream, c, p).await?;
                unacked = None;
            }
        }
        if args.limit.is_some_and(|l| events >= l) {
            break;
        }
    }
    if let (Some(c), Some(_), Some(p)) = (consumer, args.ack_every, unacked) {
        ack(&stream, c, p).await?;
    }
    let stats = stream.stats();
    tracing::info!(
        events,
        reconnects = stats.reconnects,
        duplicates_dropped = stats.duplicates_dropped,
        "subscription ended"
    );
    Ok(())
}

/// A failed subscription as one line, with the earliest position when the start was too old.
fn describe(client: &Client, e: ClientError) -> String {
    if let Some(p) = e.earliest_position() {
        return format!("{e} (earliest available: {}:{})", p.log_index, p.ordinal);
    }
    super::cluster_error(client, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SubscribeArgs,
    }

    fn parse(args: &[&str]) -> Result<SubscribeArgs, String> {
        let argv = std::iter::once("subscribe").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn subscribe_flags_build_the_options() {
        let a = parse(&[
            "--kinds",
            "orders,trades",
            "--instruments",
            "rb2501,cu2501",
            "--prefixes",
            "SHFE.rb",
            "--users",
            "u1",
            "--exchange",
            "SHFE",
            "--from",
            "120:3",
            "--mode",
            "conflated",
            "--window-ms",
            "500",
            "--heartbeat-ms",
            "200",
            "--consumer",
            "risk",
            "--ack-every",
            "10",
            "--limit",
            "5",
        ])
        .unwrap();
        let o = a.options();
        let f = o.filter();
        assert_eq!(
            f.kinds,
            vec![pb::RecordKind::Orders as i32, pb::RecordKind::Trades as i32]
        );
        assert_eq!(f.instruments, vec!["rb2501", "cu2501"]);
        assert_eq!(f.instrument_prefixes, vec!["SHFE.rb"]);
        assert_eq!(f.users, vec!["u1"]);
        assert_eq!(f.exchange, "SHFE");
        assert_eq!(
            o.start_at(),
            Some(&Start::After(pb::Position {
                log_index: 120,
                ordinal: 3
            }))
        );
        assert_eq!(o.consumer_name(), Some("risk"));
        assert_eq!((a.ack_every, a.limit), (Some(10), Some(5)));
    }

    #[test]
    fn from_reads_keywords_positions_and_times() {
        assert_eq!(parse_from("tail").unwrap().0, Start::Tail);
        assert_eq!(parse_from("oldest").unwrap().0, Start::Oldest);
        assert_eq!(parse_from("snapshot").unwrap().0, Start::Snapshot);
        assert_eq!(
            parse_from("2024-12-02T09:30:00+08:00").unwrap().0,
            Start::Time(1_733_103_000_000_000_000)
        );
        assert_eq!(
            parse_from("2024-12-02").unwrap().0,
            Start::Time(1_733_097_600_000_000_000)
        );
        assert_eq!(
            parse_from("7:0").unwrap().0,
            Start::After(pb::Position {
                log_index: 7,
                ordinal: 0
            })
        );
        let e = parse_from("yesterday").unwrap_err();
        assert!(e.contains("INDEX:ORDINAL"), "{e}");
        assert_eq!(parse(&[]).unwrap().options().start_at(), None);
    }

    #[test]
    fn bad_subscribe_flags_are_refused_with_a_reason() {
        let e = parse(&["--kinds", "orders,bananas"]).unwrap_err();
        assert!(e.contains("bananas"), "{e}");
        let e = parse(&["--ack-every", "5"]).unwrap_err();
        assert!(e.contains("--consumer"), "{e}");
        assert!(parse(&["--consumer", "c", "--ack-every", "0"]).is_err());
        assert!(parse(&["--mode", "sometimes"]).is_err());
        assert!(parse(&["--from", "12:"]).is_err());
    }

    #[test]
    fn an_event_prints_as_one_json_line_with_its_record() {
        let e = pb::Event {
            position: Some(pb::Position {
                log_index: 9,
                ordinal: 1,
            }),
            record: Some(pb::Record {
                kind: Some(pb::record::Kind::Tick(pb::Tick {
                    instrument_id: "rb2501".into(),
                    last_price: 3500.0,
                    ..Default::default()
                })),
            }),
            result: Some(pb::RecordResult {
                outcome: pb::Outcome::TickRecorded as i32,
                merged_updates: 0,
            }),
            commit_time_ns: 1_733_103_000_000_000_000,
            merged: 1,
        };
        let j = event_json(&e);
        assert_eq!(j["position"], "9:1");
        assert_eq!(j["outcome"], "TICK_RECORDED");
        assert_eq!(j["commit_time"], "2024-12-02T01:30:00Z");
        assert_eq!(j["record"]["tick"]["instrument_id"], "rb2501");
        assert_eq!(j["merged"], 1);
        assert!(!j.to_string().contains('\n'));
        let row = event_row(&e);
        assert!(row.starts_with("9:1 "), "{row}");
        assert!(row.contains("tick") && row.contains("rb2501"), "{row}");
    }
}
