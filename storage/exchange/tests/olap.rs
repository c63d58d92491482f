//! The Parquet path: converted days answer exactly as before, conversions are idempotent,
//! deterministic and crash-safe, retention drops old partitions and journal entries, and
//! checkpoints carry the files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use qastore_exchange::apply::apply;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::keys::Stream;
use qastore_exchange::olap::{self, catalog, RetentionPolicy};
use qastore_exchange::query::bars::{bars, Bar, BarSource, Period};
use qastore_exchange::query::{PageRequest, Queries, TimeRange};
use qastore_exchange::record::{Tick, TradeExecuted};
use qastore_exchange::Error;
use qastore_lsm::checkpoint::{verify, CheckpointStore, EngineHome};
use qastore_lsm::vfs::{PowerCut, SimVfs, Vfs};
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

/// Two trading days of three instruments (IF, cu with a night session, TA), applied.
fn loaded(vfs: &SimVfs, dir: &str) -> (Engine, u64, Vec<String>) {
    loaded_with(vfs, dir, 3, options())
}

/// Two trading days of `instruments` instruments, applied to an engine with `opts`.
fn loaded_with(
    vfs: &SimVfs,
    dir: &str,
    instruments: usize,
    opts: EngineConfig,
) -> (Engine, u64, Vec<String>) {
    let e = Engine::open(vfs.shared(), dir, opts).unwrap();
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments,
            order_rate: 0.1,
            ..GenConfig::default()
        },
        TradingCalendar::builtin(),
    );
    let mut index = 0;
    for day in [DAY1, DAY2] {
        for b in gen.trading_day(day) {
            index += 1;
            apply(&e, &b, index).unwrap();
        }
    }
    let ids = gen.instrument_ids();
    (e, index, ids)
}

/// Every answer the conversion must not change.
#[derive(Debug, PartialEq)]
struct Answers {
    ticks: Vec<Vec<Tick>>,
    trades: Vec<Vec<TradeExecuted>>,
    bars: Vec<Vec<Bar>>,
}

fn pages<T>(
    mut read: impl FnMut(&PageRequest) -> qastore_exchange::Result<qastore_exchange::query::Page<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(4_999);
    loop {
        let p = read(&page).unwrap();
        out.extend(p.items);
        match p.next {
            Some(t) => page.token = Some(t),
            None => return out,
        }
    }
}

fn answers(e: &Engine, instruments: &[String]) -> Answers {
    let q = Queries::new(e);
    let cal = TradingCalendar::builtin();
    let all = TimeRange::all();
    let mut a = Answers {
        ticks: Vec::new(),
        trades: Vec::new(),
        bars: Vec::new(),
    };
    for inst in instruments {
        a.ticks.push(pages(|p| q.ticks(inst, all, p)));
        a.trades.push(pages(|p| q.trades(inst, all, p)));
        for source in [BarSource::Ticks, BarSource::Trades] {
            for period in Period::all() {
                a.bars
                    .push(bars(e, &cal, inst, source, period, all).unwrap());
            }
        }
        // A range cutting through the converted day, starting mid-session.
        let cut = TimeRange::new(
            cal.local_time(DAY1, 10, 0, 0),
            cal.local_time(DAY2, 10, 0, 0),
        );
        a.bars
            .push(bars(e, &cal, inst, BarSource::Ticks, Period::Minute5, cut).unwrap());
    }
    a
}

fn convert(e: &Engine, index: u64) -> (olap::Conversion, olap::Conversion) {
    let ticks = olap::convert_day(e, Stream::Ticks, DAY1, index, WriteBatch::new()).unwrap();
    let trades = olap::convert_day(e, Stream::Trades, DAY1, index + 1, WriteBatch::new()).unwrap();
    (ticks, trades)
}

/// Any of the ways a power cut can treat unsynced bytes.
fn power_cut_mode() -> impl Strategy<Value = PowerCut> {
    prop_oneof![
        Just(PowerCut::DropUnsynced),
        Just(PowerCut::KeepRandomPrefix),
        Just(PowerCut::ZeroFillTail)
    ]
}

#[test]
fn converted_days_give_the_same_answers() {
    let vfs = SimVfs::new(1);
    let (e, index, ids) = loaded(&vfs, "/db");
    let before = answers(&e, &ids);
    assert!(before.ticks.iter().all(|t| t.len() > 10_000));
    let (ticks, trades) = convert(&e, index + 1);
    assert_eq!(ticks.partitions.len(), 3);
    assert_eq!(trades.partitions.len(), 3);
    let day1_ticks: u64 = ticks.rows;
    assert!(day1_ticks > 50_000, "{day1_ticks}");
    assert!(
        ticks.bytes < day1_ticks * 60,
        "compressed: {} bytes for {day1_ticks} ticks",
        ticks.bytes
    );
    for p in ticks.partitions.iter().chain(&trades.partitions) {
        let path = e.dir().join(&p.file);
        assert!(vfs.exists(&path).unwrap(), "{}", p.file);
        assert!(p.file.starts_with(&format!(
            "olap/{}/trading_day={DAY1}/instrument=",
            p.stream().name()
        )));
    }
    // The LSM now holds only the second day's ticks.
    let cal = TradingCalendar::builtin();
    let in_lsm = e
        .scan_prefix(&qastore_exchange::keys::instrument_ticks("IF2412"))
        .count();
    let day2 = before.ticks[0]
        .iter()
        .filter(|t| t.trading_day == DAY2)
        .count();
    assert_eq!(in_lsm, day2, "day 1 left the LSM");
    assert_eq!(answers(&e, &ids), before);
    // A page that starts in Parquet and ends in the LSM resumes seamlessly.
    let q = Queries::new(&e);
    let boundary = TimeRange::new(
        cal.local_time(DAY1, 14, 59, 0),
        cal.local_time(DAY2, 9, 1, 0),
    );
    let crossing = pages(|p| q.ticks("cu2501", boundary, p));
    let expected: Vec<Tick> = before.ticks[1]
        .iter()
        .filter(|t| boundary.contains(t.datetime))
        .cloned()
        .collect();
    assert_eq!(crossing, expected);
    assert!(
        crossing.iter().any(|t| t.trading_day == DAY1)
            && crossing.iter().any(|t| t.trading_day == DAY2)
    );

    // Running the conversion again changes nothing.
    let hash = e.state_hash().unwrap();
    let again = olap::convert_day(&e, Stream::Ticks, DAY1, index + 3, WriteBatch::new()).unwrap();
    assert_eq!((again.partitions.len(), again.already_converted), (0, 3));
    assert_eq!(e.state_hash().unwrap(), hash);
    assert_eq!(answers(&e, &ids), before);
}

#[test]
fn pending_days_walk_through_what_is_left_to_convert() {
    let vfs = SimVfs::new(11);
    let (e, index, _) = loaded(&vfs, "/db");
    for stream in [Stream::Ticks, Stream::Trades] {
        assert_eq!(
            olap::pending_days(&e, stream)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![DAY1]
        );
    }
    olap::convert_day(&e, Stream::Ticks, DAY1, index + 1, WriteBatch::new()).unwrap();
    let left: Vec<u32> = olap::pending_days(&e, Stream::Ticks)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(left, vec![DAY2]);
    olap::convert_day(&e, Stream::Ticks, DAY2, index + 2, WriteBatch::new()).unwrap();
    assert!(olap::pending_days(&e, Stream::Ticks).unwrap().is_empty());
    assert_eq!(
        olap::pending_days(&e, Stream::Trades)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        vec![DAY1],
        "trades are pending until converted themselves"
    );
}

#[test]
fn two_engines_convert_to_identical_state_and_files() {
    let vfs = SimVfs::new(1);
    let (a, index, _) = loaded_with(&vfs, "/a", 1, options());
    let (b, _, _) = loaded_with(&vfs, "/b", 1, options());
    let (ca, _) = convert(&a, index + 1);
    let (cb, _) = convert(&b, index + 1);
    assert_eq!(ca.partitions, cb.partitions);
    assert_eq!(a.state_hash().unwrap(), b.state_hash().unwrap());
    for p in &ca.partitions {
        assert_eq!(
            vfs.read_all(&a.dir().join(&p.file)).unwrap(),
            vfs.read_all(&b.dir().join(&p.file)).unwrap()
        );
    }
}

#[test]
fn a_damaged_parquet_file_is_reported_not_read() {
    let vfs = SimVfs::new(1);
    let (e, index, _) = loaded_with(&vfs, "/db", 1, options());
    let (ticks, _) = convert(&e, index + 1);
    let p = &ticks.partitions[0];
    let path = e.dir().join(&p.file);
    vfs.corrupt(&path, 100, &[0x42, 0x42]).unwrap();
    let q = Queries::new(&e);
    match q.ticks(&p.instrument, TimeRange::all(), &PageRequest::default()) {
        Err(Error::Engine(qastore_lsm::Error::Corruption { file, .. })) => assert_eq!(file, path),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn retention_drops_old_partitions_and_journal_entries_files_after_a_flush() {
    let vfs = SimVfs::new(1);
    // A memtable large enough that nothing is flushed unless the test asks.
    let big = EngineConfig {
        memtable_bytes: 512 << 20,
        ..options()
    };
    let (e, index, ids) = loaded_with(&vfs, "/db", 1, big);
    let (ticks, _) = convert(&e, index + 1);
    e.flush().unwrap();
    let journal_before = Queries::new(&e).journal(0, usize::MAX).unwrap().len();
    let policy = RetentionPolicy {
        drop_days_before: Some(DAY2),
        drop_journal_before: Some(index / 2),
    };
    assert!(olap::would_drop(&e, policy).unwrap());
    let report = olap::retain(&e, policy, index + 3, WriteBatch::new()).unwrap();
    assert!(
        !olap::would_drop(&e, policy).unwrap(),
        "nothing is left to drop"
    );
    assert_eq!(report.partitions_removed, 2);
    assert!(report.journal_entries_removed > 0);
    let journal_after = Queries::new(&e).journal(0, usize::MAX).unwrap();
    assert_eq!(
        journal_after.len() as u64,
        journal_before as u64 - report.journal_entries_removed
    );
    assert!(journal_after.iter().all(|j| j.log_index >= index / 2));
    // Day 1 is gone from queries; day 2 is intact.
    let q = Queries::new(&e);
    let left = q
        .ticks(&ids[0], TimeRange::all(), &PageRequest::first(10_000))
        .unwrap();
    assert!(left.items.iter().all(|t| t.trading_day == DAY2));
    // The removal is not flushed yet, so the files stay (a checkpoint may still list them).
    let file = e.dir().join(&ticks.partitions[0].file);
    assert!(vfs.exists(&file).unwrap());
    assert_eq!(olap::sweep(&e).unwrap().partitions_deleted, 0);
    e.flush().unwrap();
    assert_eq!(olap::sweep(&e).unwrap().partitions_deleted, 2);
    assert!(!vfs.exists(&file).unwrap());
    // Tombstones stay in the catalog.
    let entries = catalog::all(&e, Stream::Ticks).unwrap();
    assert!(entries.iter().all(|c| c.removed_at == Some(index + 3)));
}

#[test]
fn checkpoints_carry_the_parquet_files() {
    let vfs = SimVfs::new(1);
    let (e, index, ids) = loaded_with(&vfs, "/a/db", 2, options());
    convert(&e, index + 1);
    e.flush().unwrap();
    let before = answers(&e, &ids);
    let store = CheckpointStore::open(vfs.shared(), "/a/ckpt", 2).unwrap();
    let info = olap::create_checkpoint(&store, &e, |_| Ok(Bytes::new())).unwrap();
    assert_eq!(info.meta.extra_dirs, [olap::OLAP_DIR]);
    assert_eq!(
        info.meta
            .files
            .iter()
            .filter(|f| f.name.ends_with(".parquet"))
            .count(),
        4
    );
    verify(&vfs, &info.dir).unwrap();
    let lease = store.lease(&info.name()).unwrap();
    let target = CheckpointStore::open(vfs.shared(), "/b/ckpt", 2).unwrap();
    let mut installer = target.begin_install(lease.info().meta.clone()).unwrap();
    for f in &lease.info().meta.files {
        installer
            .write(
                &f.name,
                0,
                &lease.read_chunk(&f.name, 0, f.size as usize).unwrap(),
            )
            .unwrap();
    }
    let installed = installer.finish().unwrap();
    let mut home = EngineHome::open(vfs.shared(), "/b/engine").unwrap();
    let dir = home.switch_to(&installed).unwrap();
    let copy = Engine::open(vfs.shared(), dir, options()).unwrap();
    assert_eq!(answers(&copy, &ids), before);
}

/// The state and tick answers of one instrument's two days after converting day 1, computed
/// once without any power cut.
fn reference() -> &'static (u64, Vec<Vec<Tick>>) {
    static REFERENCE: std::sync::OnceLock<(u64, Vec<Vec<Tick>>)> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let vfs = SimVfs::new(0);
        let (e, index, ids) = loaded_with(&vfs, "/db", 1, options());
        convert(&e, index + 1);
        let q = Queries::new(&e);
        let ticks = ids
            .iter()
            .map(|i| pages(|p| q.ticks(i, TimeRange::all(), p)))
            .collect();
        (e.state_hash().unwrap(), ticks)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    /// A power cut anywhere in a conversion; after the restart the entry is applied again (as
    /// the Raft log would) and the result is the same as without the cut.
    #[test]
    fn a_power_cut_during_conversion_is_repaired_by_running_it_again(
        crash_at in 1u64..40,
        mode in power_cut_mode(),
        seed: u64,
    ) {
        let vfs = SimVfs::new(seed);
        let (e, index, ids) = loaded_with(&vfs, "/db", 1, options());
        e.flush().unwrap();
        vfs.crash_after_ops(crash_at, mode);
        let _ = olap::convert_day(&e, Stream::Ticks, DAY1, index + 1, WriteBatch::new());
        if !vfs.is_halted() {
            vfs.power_cut(mode);
        }
        drop(e);
        vfs.restart();
        let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
        let flushed = e.flushed_index();
        prop_assert!(flushed >= index);
        if flushed == index {
            olap::convert_day(&e, Stream::Ticks, DAY1, index + 1, WriteBatch::new()).unwrap();
        }
        olap::convert_day(&e, Stream::Trades, DAY1, index + 2, WriteBatch::new()).unwrap();
        olap::sweep(&e).unwrap();
        let (hash, ticks) = reference();
        prop_assert_eq!(e.state_hash().unwrap(), *hash);
        let q = Queries::new(&e);
        let got: Vec<Vec<Tick>> = ids.iter().map(|i| pages(|p| q.ticks(i, TimeRange::all(), p))).collect();
        prop_assert_eq!(&got, ticks);
    }
}
