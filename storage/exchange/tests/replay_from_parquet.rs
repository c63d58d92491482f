//! Ticks and trades that journal retention dropped replay from their Parquet parts, in position
//! order and then on into the journal, exactly as the journal gave them; where a dropped event
//! is in no part at its position, the replay floor rises above it and older starts are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qastore_exchange::apply::{apply, stage, Outcome};
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::feed::archive::{self, Source};
use qastore_exchange::feed::{journal, EventFilter, EventKind, Position};
use qastore_exchange::keys::{self, Stream};
use qastore_exchange::olap::{self, RetentionPolicy};
use qastore_exchange::record::Record;
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::{Engine, EngineConfig, WriteBatch};

const DAY1: u32 = 20241202;
const DAY2: u32 = 20241203;

/// An engine with two trading days of three instruments applied, each batch committed at its
/// log index in milliseconds ([`committed_at`]), the log index of the last batch of each day,
/// and the instrument ids.
struct Loaded {
    engine: Engine,
    day1_last: u64,
    last: u64,
    instruments: Vec<String>,
    _dir: tempfile::TempDir,
}

fn loaded() -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 3,
            order_rate: 0.1,
            ..GenConfig::default()
        },
        TradingCalendar::builtin(),
    );
    let mut index = 0;
    let mut day1_last = 0;
    for day in [DAY1, DAY2] {
        for b in gen.trading_day(day) {
            index += 1;
            let mut staged = stage(&engine, &b, index).unwrap();
            let time = journal::encode_time(committed_at(index));
            staged.batch.put(keys::commit_time(index), time);
            engine.apply(&staged.batch, index).unwrap();
        }
        if day == DAY1 {
            day1_last = index;
        }
    }
    Loaded {
        engine,
        day1_last,
        last: index,
        instruments: gen.instrument_ids(),
        _dir: dir,
    }
}

/// When the batch at `index` of [`loaded`] was committed.
fn committed_at(index: u64) -> i64 {
    index as i64 * 1_000_000
}

fn ticks_and_trades(instruments: &[&str]) -> EventFilter {
    let ids = instruments.iter().map(|s| s.to_string()).collect();
    EventFilter::new(
        vec![EventKind::Ticks, EventKind::Trades],
        ids,
        vec![],
        vec![],
        None,
    )
    .unwrap()
}

type Event = (Position, Record, Outcome);

/// Every event after `after` matching `filter`, read as a stream does: from Parquet below the
/// journal's floor (a row group's window at a time, the smallest there is), then from the
/// journal. `Err` with the earliest start when some are gone.
fn replay(e: &Engine, filter: &EventFilter, after: Position) -> Result<Vec<Event>, Position> {
    replay_in_windows(e, filter, after, 1).map(|(events, _)| events)
}

/// [`replay`], reading about `window_rows` Parquet rows at a time; also the most events one
/// read from the files held.
fn replay_in_windows(
    e: &Engine,
    filter: &EventFilter,
    mut after: Position,
    window_rows: u64,
) -> Result<(Vec<Event>, usize), Position> {
    let mut out = Vec::new();
    let mut most_held = 0;
    let mut open = archive::OpenParts::new();
    loop {
        let read = match archive::locate(e, after, filter).unwrap()? {
            Source::Journal => journal::read_after(e, after, filter, 1_000).unwrap(),
            Source::Archive { below } => {
                let read =
                    archive::read_after(e, after, below, filter, window_rows, &mut open).unwrap();
                let held = read.batches.iter().map(|b| b.events.len()).sum();
                most_held = most_held.max(held);
                read
            }
        };
        for b in &read.batches {
            for ev in &b.events {
                out.push((b.position_of(ev), ev.record.clone(), ev.outcome));
            }
        }
        match read.covered_through {
            Some(through) => {
                assert!(through > after, "a read moved on from {after}");
                after = through;
            }
            None => return Ok((out, most_held)),
        }
    }
}

fn convert_day1(e: &Engine, index: u64) {
    olap::convert_day(e, Stream::Ticks, DAY1, index, WriteBatch::new()).unwrap();
    olap::convert_day(e, Stream::Trades, DAY1, index + 1, WriteBatch::new()).unwrap();
}

fn drop_journal_before(e: &Engine, cutoff: u64, index: u64) {
    let policy = RetentionPolicy {
        drop_journal_before: Some(cutoff),
        ..RetentionPolicy::default()
    };
    olap::retain(e, policy, index, WriteBatch::new()).unwrap();
}

/// [`loaded`], with the first day converted and then dropped from the journal, and what
/// every tick and trade, and those of one instrument, replayed as before that.
struct Archived {
    l: Loaded,
    all: EventFilter,
    one: EventFilter,
    before_all: Vec<Event>,
    before_one: Vec<Event>,
    /// The journal's floor: the first log index of the second day.
    cutoff: u64,
}

fn first_day_archived() -> Archived {
    let l = loaded();
    let e = &l.engine;
    let all = ticks_and_trades(&[]);
    let one = ticks_and_trades(&[l.instruments[0].as_str()]);
    let before_all = replay(e, &all, Position::end_of(0)).unwrap();
    let before_one = replay(e, &one, Position::end_of(0)).unwrap();
    convert_day1(e, l.last + 1);
    let cutoff = l.day1_last + 1;
    drop_journal_before(e, cutoff, l.last + 3);
    Archived {
        l,
        all,
        one,
        before_all,
        before_one,
        cutoff,
    }
}

#[test]
fn dropped_ticks_and_trades_replay_from_parquet_a_window_at_a_time_then_from_the_journal() {
    let Archived {
        l,
        all,
        one,
        before_all,
        before_one,
        cutoff,
    } = first_day_archived();
    let e = &l.engine;
    let start = Position::end_of(0);
    assert!(before_all.len() > 1_000, "{} events", before_all.len());
    assert!(!before_one.is_empty() && before_one.len() < before_all.len());
    // Every event of the first day left the journal.
    assert_eq!(journal::floor(e).unwrap(), cutoff);
    assert_eq!(olap::replay_floor(e).unwrap(), 0);
    assert_eq!(
        archive::locate(e, start, &all).unwrap(),
        Ok(Source::Archive { below: cutoff })
    );
    assert_eq!(archive::oldest_start(e, &all).unwrap(), start);

    assert_eq!(replay(e, &all, start).unwrap(), before_all);
    assert_eq!(replay(e, &one, start).unwrap(), before_one);
    // The day's parts are cut into half-hour row groups: one read holds a slice of the day,
    // and reading the whole set at once gives the same events.
    let (whole, held_whole) = replay_in_windows(e, &all, start, u64::MAX).unwrap();
    let (_, held_windowed) = replay_in_windows(e, &all, start, 1).unwrap();
    assert_eq!(whole, before_all);
    assert!(
        held_windowed * 4 < held_whole,
        "one read held {held_windowed} of the day's {held_whole} events"
    );
    // From the middle of the converted day, and from right before the journal's floor.
    let mid = before_all.len() / 3;
    assert_eq!(
        replay(e, &all, before_all[mid].0).unwrap(),
        before_all[mid + 1..]
    );
    let at_floor = before_all
        .iter()
        .position(|ev| ev.0.index >= cutoff)
        .unwrap();
    assert_eq!(
        replay(e, &all, Position::end_of(cutoff - 1)).unwrap(),
        before_all[at_floor..]
    );

    // Other kinds are not in Parquet: their stream still starts at the journal's floor.
    let orders = EventFilter::new(vec![EventKind::Orders], vec![], vec![], vec![], None).unwrap();
    assert_eq!(
        archive::locate(e, start, &orders).unwrap(),
        Err(journal::earliest(e).unwrap().unwrap())
    );
    assert_eq!(
        archive::oldest_start(e, &orders).unwrap(),
        Position::end_of(cutoff - 1)
    );
}

#[test]
fn a_time_start_older_than_the_journal_finds_its_batch_in_parquet() {
    let a = first_day_archived();
    let (l, e) = (&a.l, &a.l.engine);
    let applied = e.applied_index();

    // Every event committed at or after the time, and none before, for each filter: times in
    // the converted day, at the journal's floor, in the journal, and before everything.
    let times = [0, l.day1_last / 3, l.day1_last - 1, a.cutoff, l.last - 5].map(committed_at);
    for time in times {
        for (filter, before) in [(&a.all, &a.before_all), (&a.one, &a.before_one)] {
            let cursor = archive::time_start(e, time, filter, applied)
                .unwrap()
                .unwrap_or_else(|earliest| panic!("time {time} refused, earliest {earliest}"));
            let want: Vec<Event> = before
                .iter()
                .filter(|ev| committed_at(ev.0.index) >= time)
                .cloned()
                .collect();
            assert!(!want.is_empty());
            assert_eq!(replay(e, filter, cursor).unwrap(), want, "time {time}");
        }
    }
    // A time after every batch starts at the tail.
    assert_eq!(
        archive::time_start(e, committed_at(l.last + 100), &a.all, applied).unwrap(),
        Ok(Position::end_of(applied))
    );
    // Orders are not in Parquet: their time start is refused with the journal's earliest.
    let orders = EventFilter::new(vec![EventKind::Orders], vec![], vec![], vec![], None).unwrap();
    assert_eq!(
        archive::time_start(e, committed_at(1), &orders, applied).unwrap(),
        Err(journal::earliest(e).unwrap().unwrap())
    );
}

#[test]
fn a_dropped_event_that_no_part_holds_raises_the_replay_floor_above_it() {
    let l = loaded();
    let e = &l.engine;
    let all = ticks_and_trades(&[]);
    // A tick of the first day sent again, identical, before the conversion: the part holds it
    // once, at the later position.
    let resent = replay(e, &all, Position::end_of(0))
        .unwrap()
        .into_iter()
        .find(|(p, r, _)| p.index > 10 && matches!(r, Record::Tick(_)))
        .unwrap();
    let mut index = l.last + 1;
    apply(e, std::slice::from_ref(&resent.1), index).unwrap();
    let before = replay(e, &all, Position::end_of(0)).unwrap();
    convert_day1(e, index + 1);
    index += 3;
    drop_journal_before(e, l.day1_last + 1, index);
    let floor = resent.0.index + 1;
    assert_eq!(olap::replay_floor(e).unwrap(), floor);
    assert_eq!(
        replay(e, &all, Position::end_of(0)),
        Err(Position::new(floor, 0))
    );
    assert_eq!(
        archive::oldest_start(e, &all).unwrap(),
        Position::end_of(floor - 1)
    );
    let from = before.iter().position(|ev| ev.0.index >= floor).unwrap();
    assert_eq!(
        replay(e, &all, Position::end_of(floor - 1)).unwrap(),
        before[from..]
    );
    // A time before the floor cannot be placed; one after it can.
    let applied = e.applied_index();
    assert_eq!(
        archive::time_start(e, committed_at(1), &all, applied).unwrap(),
        Err(Position::new(floor, 0))
    );
    let later = before[from + 10].0.index;
    let cursor = archive::time_start(e, committed_at(later), &all, applied)
        .unwrap()
        .unwrap();
    let want: Vec<Event> = before
        .iter()
        .filter(|ev| ev.0.index >= later)
        .cloned()
        .collect();
    assert_eq!(replay(e, &all, cursor).unwrap(), want);

    // The second day was never converted: dropping its events from the journal loses them.
    index += 1;
    drop_journal_before(e, l.last, index);
    assert!(olap::replay_floor(e).unwrap() > l.day1_last + 1);
    assert!(replay(e, &all, Position::end_of(l.day1_last)).is_err());
}

#[test]
fn removing_a_converted_day_raises_the_replay_floor_above_its_parts() {
    let l = loaded();
    let e = &l.engine;
    let all = ticks_and_trades(&[]);
    convert_day1(e, l.last + 1);
    drop_journal_before(e, l.day1_last + 1, l.last + 3);
    assert_eq!(olap::replay_floor(e).unwrap(), 0);
    let policy = RetentionPolicy {
        drop_days_before: Some(DAY2),
        ..RetentionPolicy::default()
    };
    olap::retain(e, policy, l.last + 4, WriteBatch::new()).unwrap();
    let floor = olap::replay_floor(e).unwrap();
    assert!(floor > 0 && floor <= l.day1_last + 1, "floor {floor}");
    // Nothing below the journal's floor is left: a stream starts there.
    assert_eq!(
        archive::oldest_start(e, &all).unwrap(),
        Position::end_of(floor.min(l.day1_last + 1) - 1)
    );
    assert!(replay(e, &all, Position::end_of(0)).is_err());
}

#[test]
fn a_late_row_converted_into_a_later_part_replays_at_its_own_position() {
    let l = loaded();
    let e = &l.engine;
    let all = ticks_and_trades(&[]);
    convert_day1(e, l.last + 1);
    // A tick of the first day that arrives after its conversion, with a sequence of its own.
    let Some((_, Record::Tick(mut late), _)) = replay(e, &all, Position::end_of(0))
        .unwrap()
        .into_iter()
        .find(|(_, r, _)| matches!(r, Record::Tick(_)))
    else {
        panic!("the first day has ticks");
    };
    late.sequence += 1_000_000;
    let mut index = l.last + 3;
    apply(e, &[Record::Tick(late)], index).unwrap();
    let before = replay(e, &all, Position::end_of(0)).unwrap();
    index += 1;
    let late_rows = olap::convert_day(e, Stream::Ticks, DAY1, index, WriteBatch::new()).unwrap();
    assert_eq!(late_rows.late_rows, 1);
    for stream in [Stream::Ticks, Stream::Trades] {
        index += 1;
        olap::convert_day(e, stream, DAY2, index, WriteBatch::new()).unwrap();
    }
    index += 1;
    drop_journal_before(e, index, index);
    assert_eq!(olap::replay_floor(e).unwrap(), 0);
    assert_eq!(replay(e, &all, Position::end_of(0)).unwrap(), before);
}
