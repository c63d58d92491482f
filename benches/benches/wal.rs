//! WAL append with group commit, beside fjall at equal durability (fdatasync before a write
//! is acknowledged).
//!
//! Four writer threads each append batches of 1, 100 or 1000 records (128 B each) and wait
//! until their batch is durable. QAStore: entries go into the WAL (one `sync_data` per group of
//! whatever is queued), and in a second row also into the engine's memtable, which is what a
//! node does per entry. fjall: a write batch committed to its journal + memtable, then
//! `persist(SyncData)`. Besides criterion's throughput, each row prints fsyncs per second and
//! the append-to-durable latency percentiles.
//!
//! Run: `cargo bench -p qastore-benches --bench wal`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use parking_lot::Mutex;
use qastore_benches::{key16, Latencies};
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::wal::{Wal, WalConfig, WalEntry};
use qastore_lsm::{Engine, EngineConfig, WriteBatch};

// The allocator the qastore binary ships with, for both stores alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
const WRITERS: u64 = 4;
const RECORD: usize = 128;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10)
}

/// Runs `iters` appends split over the writer threads; each writer calls `append` and records
/// its latency. Returns the wall time.
fn run_writers<F>(iters: u64, lat: &Mutex<Latencies>, append: F) -> Duration
where
    F: Fn() + Send + Sync,
{
    let per = iters.div_ceil(WRITERS);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WRITERS {
            s.spawn(|| {
                let mut mine = Latencies::new();
                for _ in 0..per {
                    let t = Instant::now();
                    append();
                    mine.record(t.elapsed());
                }
                lat.lock().merge(&mine);
            });
        }
    });
    start.elapsed()
}

struct Log {
    wal: Wal,
    engine: Option<Engine>,
    next: Mutex<u64>,
    payload: Vec<u8>,
}

impl Log {
    fn append_and_wait(&self, batch: usize) {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            // One appender at a time, as the Raft log store is driven; the wait is outside.
            let mut next = self.next.lock();
            let entries: Vec<_> = (0..batch as u64)
                .map(|j| WalEntry::new(*next + j, 1, self.payload.clone()))
                .collect();
            self.wal
                .append(&entries, move |r| {
                    let _ = tx.send(r);
                })
                .unwrap();
            if let Some(engine) = &self.engine {
                let mut b = WriteBatch::new();
                for j in 0..batch as u64 {
                    b.put(key16(*next + j).to_vec(), self.payload.clone());
                }
                engine.apply(&b, *next + batch as u64 - 1).unwrap();
            }
            *next += batch as u64;
        }
        rx.recv().unwrap().unwrap();
    }
}

fn report(row: &str, batch: usize, lat: &Latencies, fsyncs: Option<(u64, Duration)>) {
    let fs = fsyncs.map_or("n/a".to_string(), |(n, d)| {
        format!("{:.0}", n as f64 / d.as_secs_f64())
    });
    println!(
        "wal_append_{batch:<5} {row:<20} fsyncs/s {fs:>8}  latency {}",
        lat.summary()
    );
}

fn wal_append(c: &mut Criterion) {
    for batch in [1usize, 100, 1000] {
        let mut g = c.benchmark_group(format!("wal_append_{batch}"));
        g.throughput(Throughput::Elements(batch as u64));
        for with_engine in [false, true] {
            let row = if with_engine {
                "qastore_wal_engine"
            } else {
                "qastore_wal"
            };
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(
                OsVfs::shared(),
                dir.path().join("wal"),
                WalConfig::default(),
            )
            .unwrap();
            let engine = with_engine.then(|| {
                Engine::open(
                    OsVfs::shared(),
                    dir.path().join("db"),
                    EngineConfig::default(),
                )
                .unwrap()
            });
            let log = Arc::new(Log {
                wal,
                engine,
                next: Mutex::new(1),
                payload: vec![0x42; RECORD],
            });
            let lat = Mutex::new(Latencies::new());
            let mut fsyncs = 0;
            let mut busy = Duration::ZERO;
            g.bench_function(row, |b| {
                b.iter_custom(|iters| {
                    let before = log.wal.stats().segment_syncs;
                    let d = run_writers(iters, &lat, || log.append_and_wait(batch));
                    fsyncs += log.wal.stats().segment_syncs - before;
                    busy += d;
                    d
                })
            });
            report(row, batch, &lat.lock(), Some((fsyncs, busy)));
        }

        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("bench", KeyspaceCreateOptions::default)
            .unwrap();
        let next = Mutex::new(0u64);
        let payload = vec![0x42u8; RECORD];
        let lat = Mutex::new(Latencies::new());
        let mut calls = 0u64;
        let mut busy = Duration::ZERO;
        g.bench_function("fjall_sync_data", |b| {
            b.iter_custom(|iters| {
                let d = run_writers(iters, &lat, || {
                    let first = {
                        let mut n = next.lock();
                        *n += batch as u64;
                        *n - batch as u64
                    };
                    let mut wb = db.batch();
                    for j in 0..batch as u64 {
                        wb.insert(&ks, key16(first + j), payload.clone());
                    }
                    wb.commit().unwrap();
                    db.persist(PersistMode::SyncData).unwrap();
                });
                calls += iters;
                busy += d;
                d
            })
        });
        // fjall issues one fdatasync per persist call.
        report("fjall_sync_data", batch, &lat.lock(), Some((calls, busy)));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = wal_append
}
criterion_main!(benches);
