//! Late rows: ticks and trades that arrive for a trading day after it was converted to Parquet
//! are read merged with the day's file until the next conversion appends them as a new part
//! file; the part files together then hold exactly the rows the API answers, each once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qastore_exchange::apply::apply;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::keys::{self, Stream};
use qastore_exchange::olap::{self, catalog};
use qastore_exchange::query::bars::{bars, Bar, BarSource, Period};
use qastore_exchange::query::{PageRequest, Queries, TimeRange};
use qastore_exchange::record::{Record, Tick, TradeExecuted};
use qastore_lsm::vfs::{SimVfs, Vfs};
use qastore_lsm::WriteBatch;
use qastore_lsm::{Engine, EngineConfig};

const DAY1: u32 = 20241202;
const DAY2: u32 = 20241203;

fn options() -> EngineConfig {
    EngineConfig {
        memtable_bytes: 1 << 20,
        level1_bytes: 4 << 20,
        target_file_bytes: 1 << 20,
        ..EngineConfig::default()
    }
}

/// Two days of two instruments: the batches of day 1 split into the rows that came on time and
/// every third tick and trade held back (the late rows), then day 2.
struct Feed {
    on_time: Vec<Vec<Record>>,
    late: Vec<Vec<Record>>,
    day2: Vec<Vec<Record>>,
    ids: Vec<String>,
}

fn feed() -> Feed {
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 2,
            order_rate: 0.1,
            ..GenConfig::default()
        },
        TradingCalendar::builtin(),
    );
    let (mut on_time, mut late) = (Vec::new(), Vec::new());
    let mut n = 0u64;
    for batch in gen.trading_day(DAY1) {
        let (mut keep, mut hold) = (Vec::new(), Vec::new());
        for r in batch {
            let market = matches!(r, Record::Tick(_) | Record::TradeExecuted(_));
            n += u64::from(market);
            if market && n.is_multiple_of(3) {
                hold.push(r);
            } else {
                keep.push(r);
            }
        }
        if !keep.is_empty() {
            on_time.push(keep);
        }
        if !hold.is_empty() {
            late.push(hold);
        }
    }
    let day2 = gen.trading_day(DAY2);
    Feed {
        on_time,
        late,
        day2,
        ids: gen.instrument_ids(),
    }
}

/// Applies `batches` from log index `*index + 1` on.
fn apply_all(e: &Engine, batches: &[Vec<Record>], index: &mut u64) {
    for b in batches {
        *index += 1;
        apply(e, b, *index).unwrap();
    }
}

fn pages<T>(
    mut read: impl FnMut(&PageRequest) -> qastore_exchange::Result<qastore_exchange::query::Page<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(3_000);
    loop {
        let p = read(&page).unwrap();
        out.extend(p.items);
        match p.next {
            Some(t) => page.token = Some(t),
            None => return out,
        }
    }
}

/// What readers of the API see of the market data.
#[derive(Debug, PartialEq)]
struct Answers {
    ticks: Vec<Vec<Tick>>,
    trades: Vec<Vec<TradeExecuted>>,
    bars: Vec<Vec<Bar>>,
}

fn answers(e: &Engine, ids: &[String]) -> Answers {
    let q = Queries::new(e);
    let cal = TradingCalendar::builtin();
    let all = TimeRange::all();
    let mut a = Answers {
        ticks: Vec::new(),
        trades: Vec::new(),
        bars: Vec::new(),
    };
    for inst in ids {
        a.ticks.push(pages(|p| q.ticks(inst, all, p)));
        a.trades.push(pages(|p| q.trades(inst, all, p)));
        for source in [BarSource::Ticks, BarSource::Trades] {
            for period in [Period::Minute1, Period::Hour1, Period::Day1] {
                a.bars
                    .push(bars(e, &cal, inst, source, period, all).unwrap());
            }
        }
    }
    a
}

fn convert_day1(e: &Engine, index: &mut u64) -> (olap::Conversion, olap::Conversion) {
    *index += 1;
    let ticks = olap::convert_day(e, Stream::Ticks, DAY1, *index, WriteBatch::new()).unwrap();
    *index += 1;
    let trades = olap::convert_day(e, Stream::Trades, DAY1, *index, WriteBatch::new()).unwrap();
    (ticks, trades)
}

/// Every row of day 1 in `instrument`'s tick part files, read file by file as a Parquet reader
/// would, in time order.
fn ticks_in_files(e: &Engine, instrument: &str) -> (usize, Vec<Tick>) {
    let parts: Vec<_> = catalog::for_instrument(e, Stream::Ticks, instrument)
        .unwrap()
        .into_iter()
        .filter(|c| c.trading_day == DAY1 && c.is_live())
        .collect();
    let mut rows = Vec::new();
    for p in &parts {
        let read = olap::read_partition_ticks(e, p, TimeRange::all()).unwrap();
        assert_eq!(read.len() as u64, p.rows, "{}", p.file);
        rows.extend(read);
    }
    rows.sort_by_key(|t| (t.datetime, t.sequence));
    (parts.len(), rows)
}

fn day1(ticks: &[Tick]) -> Vec<Tick> {
    ticks
        .iter()
        .filter(|t| t.trading_day == DAY1)
        .cloned()
        .collect()
}

#[test]
fn late_rows_reach_a_second_part_file_and_are_counted_once() {
    let vfs = SimVfs::new(5);
    let f = feed();
    assert!(f.late.iter().map(Vec::len).sum::<usize>() > 1_000);

    // The reference got everything on time and converted nothing.
    let reference = Engine::open(vfs.shared(), "/ref", options()).unwrap();
    let mut ri = 0;
    apply_all(&reference, &f.on_time, &mut ri);
    apply_all(&reference, &f.late, &mut ri);
    apply_all(&reference, &f.day2, &mut ri);
    let expected = answers(&reference, &f.ids);

    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    let mut index = 0;
    apply_all(&e, &f.on_time, &mut index);
    apply_all(&e, &f.day2, &mut index);
    let (first, _) = convert_day1(&e, &mut index);
    assert!(first.partitions.iter().all(|p| p.part() == 0));
    assert_eq!(first.late_rows, 0);
    assert!(olap::pending_days(&e, Stream::Ticks)
        .unwrap()
        .iter()
        .all(|d| *d != DAY1));

    // The late rows arrive: until converted they are read from the LSM beside the file.
    apply_all(&e, &f.late, &mut index);
    assert_eq!(answers(&e, &f.ids), expected);
    for stream in [Stream::Ticks, Stream::Trades] {
        assert!(
            olap::pending_days(&e, stream).unwrap().contains(&DAY1),
            "a converted day that received late rows is pending again ({stream:?})"
        );
    }

    // The next conversion appends them as part 1 of each partition.
    let (ticks, trades) = convert_day1(&e, &mut index);
    assert_eq!(ticks.partitions.len(), f.ids.len());
    assert_eq!(trades.partitions.len(), f.ids.len());
    for p in ticks.partitions.iter().chain(&trades.partitions) {
        assert_eq!(p.part(), 1, "{}", p.file);
        assert!(p.file.ends_with("/part-1.parquet"), "{}", p.file);
        assert!(vfs.exists(&e.dir().join(&p.file)).unwrap());
    }
    assert_eq!(ticks.late_rows, ticks.rows);
    for (i, inst) in f.ids.iter().enumerate() {
        // No day-1 row is left in the LSM: it holds day 2 only.
        let in_lsm = e.scan_prefix(&keys::instrument_ticks(inst)).count();
        let day2 = expected.ticks[i]
            .iter()
            .filter(|t| t.trading_day == DAY2)
            .count();
        assert_eq!(in_lsm, day2, "{inst}");
        // The part files together hold exactly the day the API answers.
        let (parts, in_files) = ticks_in_files(&e, inst);
        assert_eq!(parts, 2, "{inst}");
        assert_eq!(in_files, day1(&expected.ticks[i]), "{inst}");
    }
    // Reads (ticks, trades, bars) are unchanged: no row counted twice.
    assert_eq!(answers(&e, &f.ids), expected);
    assert!(olap::pending_days(&e, Stream::Ticks)
        .unwrap()
        .iter()
        .all(|d| *d != DAY1));

    // Nothing more came: converting again writes nothing.
    let hash = e.state_hash().unwrap();
    let (again, _) = convert_day1(&e, &mut index);
    assert!(again.partitions.is_empty());
    assert_eq!(again.already_converted, f.ids.len());
    assert_eq!(e.state_hash().unwrap(), hash);
}

#[test]
fn a_tick_written_again_after_conversion_replaces_the_converted_one() {
    let vfs = SimVfs::new(6);
    let f = feed();
    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    let mut index = 0;
    apply_all(&e, &f.on_time, &mut index);
    convert_day1(&e, &mut index);
    let inst = &f.ids[0];
    let q = Queries::new(&e);
    let before = pages(|p| q.ticks(inst, TimeRange::all(), p));
    // The same tick (same time and sequence) sent again with another price.
    let mut again = before[before.len() / 2].clone();
    again.last_price += 1.0;
    index += 1;
    apply(&e, &[Record::Tick(again.clone())], index).unwrap();
    let check = |e: &Engine| {
        let q = Queries::new(e);
        let now = pages(|p| q.ticks(inst, TimeRange::all(), p));
        assert_eq!(now.len(), before.len(), "counted once");
        let at = now
            .iter()
            .position(|t| (t.datetime, t.sequence) == (again.datetime, again.sequence))
            .unwrap();
        assert_eq!(now[at], again, "the newest copy is read");
        let cal = TradingCalendar::builtin();
        let day = bars(
            e,
            &cal,
            inst,
            BarSource::Ticks,
            Period::Day1,
            TimeRange::all(),
        )
        .unwrap();
        assert_eq!(day.len(), 1);
    };
    check(&e);
    // Converted into part 1, the newer copy still wins over part 0's.
    let (ticks, _) = convert_day1(&e, &mut index);
    assert_eq!(ticks.late_rows, 1);
    check(&e);
}

#[test]
fn retention_removes_every_part_and_sweeps_uncommitted_ones() {
    let vfs = SimVfs::new(7);
    let f = feed();
    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    let mut index = 0;
    apply_all(&e, &f.on_time, &mut index);
    convert_day1(&e, &mut index);
    apply_all(&e, &f.late, &mut index);
    let (ticks, _) = convert_day1(&e, &mut index);
    let part1 = e.dir().join(&ticks.partitions[0].file);
    // A part file no catalog entry names (its conversion never committed here) is swept.
    let stray = part1.with_file_name("part-7.parquet");
    qastore_lsm::vfs::write_atomic(&vfs, &stray, b"not committed").unwrap();
    let swept = olap::sweep(&e).unwrap();
    assert_eq!(swept.stray_files_deleted, 1);
    assert!(!vfs.exists(&stray).unwrap());
    assert!(vfs.exists(&part1).unwrap());

    index += 1;
    let policy = olap::RetentionPolicy {
        drop_days_before: Some(DAY2),
        drop_journal_before: None,
    };
    let r = olap::retain(&e, policy, index, WriteBatch::new()).unwrap();
    assert_eq!(
        r.partitions_removed,
        4 * f.ids.len(),
        "two parts of two streams"
    );
    e.flush().unwrap();
    olap::sweep(&e).unwrap();
    assert!(!vfs.exists(&part1).unwrap());
    assert!(catalog::all(&e, Stream::Ticks)
        .unwrap()
        .iter()
        .all(|c| !c.is_live()));
}

#[test]
fn a_feed_sent_again_after_conversion_is_not_written_twice() {
    let vfs = SimVfs::new(8);
    let f = feed();
    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    let mut index = 0;
    apply_all(&e, &f.on_time, &mut index);
    convert_day1(&e, &mut index);
    let expected = answers(&e, &f.ids);
    // The whole day again, unchanged, plus one tick that is new.
    apply_all(&e, &f.on_time, &mut index);
    let mut new = expected.ticks[0][10].clone();
    new.sequence += 1_000_000;
    index += 1;
    apply(&e, &[Record::Tick(new.clone())], index).unwrap();
    let (ticks, trades) = convert_day1(&e, &mut index);
    assert_eq!(ticks.late_rows, 1, "only the new tick is written");
    assert!(ticks.duplicates_dropped > 1_000);
    assert_eq!(trades.partitions.len(), 0, "no trade was new");
    assert!(trades.duplicates_dropped > 0);
    assert!(olap::pending_days(&e, Stream::Ticks)
        .unwrap()
        .iter()
        .all(|d| *d != DAY1));
    let mut want = day1(&expected.ticks[0]);
    want.push(new);
    want.sort_by_key(|t| (t.datetime, t.sequence));
    let (parts, in_files) = ticks_in_files(&e, &f.ids[0]);
    assert_eq!(parts, 2);
    assert_eq!(in_files, want, "the files hold each tick once");
    let now = answers(&e, &f.ids);
    assert_eq!(now.trades, expected.trades);
    assert_eq!(now.ticks[1], expected.ticks[1]);
}
