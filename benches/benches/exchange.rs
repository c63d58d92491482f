//! The exchange layer:
//!
//! * `exchange_apply`: records/s for a realistic mix (ticks, books, orders, fills, updates,
//!   accounts, positions; 100 records per batch) through QAStore's apply (outcomes, parked
//!   updates, both trade indexes, the journal), beside fjall storing the same archived records
//!   under their primary keys in one write batch per 100.
//! * `bars_10m_ticks`: one-minute bars over every instrument of 10 M ticks, read from the LSM,
//!   then from Parquet after converting every trading day.
//! * Parquet bytes per tick beside the archived record's size.
//!
//! Run: `cargo bench -p qastore-benches --bench exchange` (`EXCHANGE_BENCH_TICKS` sets the tick
//! count; the setup writes several GB and takes a few minutes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fjall::{Database, KeyspaceCreateOptions};
use qastore_exchange::apply::apply;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::keys::{self, Stream};
use qastore_exchange::olap;
use qastore_exchange::query::bars::{bars, BarSource, Period};
use qastore_exchange::query::TimeRange;
use qastore_exchange::record::{encode, Record};
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::WriteBatch;
use qastore_lsm::{Engine, EngineConfig};

// The allocator the qastore binary ships with, for both stores alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10)
}

/// A realistic mix in batches of 100 records.
fn mixed_batches(days: usize) -> Vec<Vec<Record>> {
    let cal = TradingCalendar::builtin();
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 8,
            users: 200,
            order_rate: 0.3,
            ..GenConfig::default()
        },
        cal.clone(),
    );
    let mut day = 20241202;
    let mut records = Vec::new();
    for _ in 0..days {
        records.extend(gen.trading_day(day).into_iter().flatten());
        day = cal.next_trading_day(day);
    }
    records.chunks(100).map(<[Record]>::to_vec).collect()
}

/// The primary key of a record (what a plain key-value store would file it under).
fn primary_key(r: &Record) -> Vec<u8> {
    match r {
        Record::OrderInsert(o) => keys::order(&o.user_id, &o.order_id),
        Record::OrderUpdate(u) => keys::order(&u.user_id, &u.order_id),
        Record::TradeExecuted(t) => {
            keys::trade_by_instrument(&t.instrument_id, t.trade_date_time, &t.user_id, &t.trade_id)
        }
        Record::AccountUpdate(a) => keys::account(&a.user_id, &a.currency),
        Record::PositionUpdate(p) => keys::position(&p.user_id, &p.exchange_id, &p.instrument_id),
        Record::Tick(t) => keys::tick(&t.instrument_id, t.datetime, t.sequence),
        Record::OrderBookSnapshot(b) => keys::book(&b.instrument_id, b.datetime),
    }
}

fn exchange_apply(c: &mut Criterion) {
    let batches = mixed_batches(1);
    let records: usize = batches.iter().map(Vec::len).sum();
    println!(
        "exchange_apply: {} batches, {records} records",
        batches.len()
    );
    let mut g = c.benchmark_group("exchange_apply");
    g.throughput(Throughput::Elements(100));
    g.bench_function("qastore_apply", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let e = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
            let start = Instant::now();
            for i in 0..iters {
                let batch = &batches[i as usize % batches.len()];
                // Repeated batches are duplicates the second time round: still a full apply.
                apply(&e, batch, i + 1).unwrap();
            }
            start.elapsed()
        })
    });
    g.bench_function("fjall_put_records", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let db = Database::builder(dir.path()).open().unwrap();
            let ks = db
                .keyspace("records", KeyspaceCreateOptions::default)
                .unwrap();
            let start = Instant::now();
            for i in 0..iters {
                let mut wb = db.batch();
                for r in &batches[i as usize % batches.len()] {
                    wb.insert(&ks, primary_key(r), encode(r).to_vec());
                }
                wb.commit().unwrap();
            }
            start.elapsed()
        })
    });
    g.finish();
}

struct TickStore {
    _dir: tempfile::TempDir,
    engine: Engine,
    instruments: Vec<String>,
    days: Vec<u32>,
    ticks: u64,
    raw_bytes: u64,
}

/// `n` ticks over as many trading days as needed, applied in batches of 10,000.
fn tick_store(n: u64) -> TickStore {
    let cal = TradingCalendar::builtin();
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 20,
            order_rate: 0.0,
            book_every: 0,
            ..GenConfig::default()
        },
        cal.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
    let (mut day, mut index, mut ticks, mut raw_bytes, mut days) =
        (20241202, 0u64, 0u64, 0u64, Vec::new());
    let started = Instant::now();
    while ticks < n {
        let records: Vec<Record> = gen.trading_day(day).into_iter().flatten().collect();
        for chunk in records.chunks(10_000) {
            index += 1;
            apply(&engine, chunk, index).unwrap();
        }
        ticks += records.len() as u64;
        raw_bytes += records.iter().map(|r| encode(r).len() as u64).sum::<u64>();
        days.push(day);
        day = cal.next_trading_day(day);
    }
    engine.flush().unwrap();
    engine.wait_for_compactions().unwrap();
    println!(
        "bars_10m_ticks: {ticks} ticks over {} trading days loaded in {:.1?}",
        days.len(),
        started.elapsed()
    );
    TickStore {
        _dir: dir,
        engine,
        instruments: gen.instrument_ids(),
        days,
        ticks,
        raw_bytes,
    }
}

fn all_bars(store: &TickStore) -> usize {
    let cal = TradingCalendar::builtin();
    store
        .instruments
        .iter()
        .map(|i| {
            bars(
                &store.engine,
                &cal,
                i,
                BarSource::Ticks,
                Period::Minute1,
                TimeRange::all(),
            )
            .unwrap()
            .len()
        })
        .sum()
}

fn bars_from_lsm_and_parquet(c: &mut Criterion) {
    let n = std::env::var("EXCHANGE_BENCH_TICKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000u64);
    let store = tick_store(n);
    let mut g = c.benchmark_group("bars_10m_ticks");
    g.throughput(Throughput::Elements(store.ticks));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    let lsm_bars = all_bars(&store);
    g.bench_function("lsm", |b| b.iter(|| all_bars(&store)));
    let started = Instant::now();
    let mut parquet_bytes = 0;
    let mut index = store.engine.applied_index();
    for &day in &store.days {
        index += 1;
        let c =
            olap::convert_day(&store.engine, Stream::Ticks, day, index, WriteBatch::new()).unwrap();
        parquet_bytes += c.bytes;
    }
    println!(
        "converted {} days to Parquet in {:.1?}",
        store.days.len(),
        started.elapsed()
    );
    // Until compaction drops them, the deletes of the converted rows are still scanned past.
    let started = Instant::now();
    assert_eq!(all_bars(&store), lsm_bars, "the same bars from Parquet");
    println!(
        "bars from Parquet before compaction: {:.2} M ticks/s",
        store.ticks as f64 / started.elapsed().as_secs_f64() / 1e6
    );
    let started = Instant::now();
    store.engine.compact_all().unwrap();
    println!("compacted the deletes away in {:.1?}", started.elapsed());
    g.bench_function("parquet", |b| b.iter(|| all_bars(&store)));
    g.finish();
    println!(
        "parquet bytes per tick: {:.1} (archived record: {:.1} bytes per tick, {:.1}x smaller)",
        parquet_bytes as f64 / store.ticks as f64,
        store.raw_bytes as f64 / store.ticks as f64,
        store.raw_bytes as f64 / parquet_bytes as f64
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = exchange_apply, bars_from_lsm_and_parquet
}
criterion_main!(benches);
