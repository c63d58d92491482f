//! Engine micro-benchmarks, each beside a peer measured in the same run:
//!
//! * memtable insert / get (16 B keys, 100 B values) with keys in random order and in
//!   ascending order (exchange keys are mostly ascending: instrument + time, user + order):
//!   our memtable, the raw crossbeam skip list it is built on, and fjall (whose insert also
//!   appends to its journal buffer);
//! * table point get (hit and miss) and a 100-key scan: our engine and fjall, both reading
//!   flushed tables of the same 200k keys. Point-get latency percentiles are printed too.
//!
//! Run: `cargo bench -p qastore-benches --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::ops::Bound;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_skiplist::SkipMap;
use fjall::{Database, KeyspaceCreateOptions};
use qastore_benches::{absent_key16, key16, value, Latencies};
use qastore_lsm::ikey::{seq_of, ValueKind};
use qastore_lsm::memtable::Memtable;
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::{Engine, EngineConfig, WriteBatch};

// The allocator the qastore binary ships with, for both stores alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
const VALUE: usize = 100;
const PRELOAD: u64 = 200_000;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

/// Key `i` in random order (`Random`) or ascending order (`Ascending`).
#[derive(Clone, Copy)]
enum Order {
    Random,
    Ascending,
}

impl Order {
    fn key(self, i: u64) -> [u8; 16] {
        match self {
            Order::Random => key16(i),
            Order::Ascending => {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(b"IF2412.\0");
                k[8..].copy_from_slice(&i.to_be_bytes());
                k
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Order::Random => "random",
            Order::Ascending => "ascending",
        }
    }
}

/// Inserts into a fresh table per memtable's worth of entries (a 64 MiB memtable holds about
/// 300k of these), so the measured structure has the size it has in the engine.
const MEMTABLE_ENTRIES: u64 = 300_000;

fn memtable_insert(c: &mut Criterion) {
    let v = Bytes::from(value(0, VALUE));
    for order in [Order::Random, Order::Ascending] {
        let mut g = c.benchmark_group(format!("memtable_insert_{}", order.name()));
        g.throughput(Throughput::Elements(1));
        g.bench_function("qastore", |b| {
            b.iter_custom(|iters| {
                let mut m = Memtable::new();
                let mut total = Duration::ZERO;
                let mut start = Instant::now();
                for i in 0..iters {
                    if i.is_multiple_of(MEMTABLE_ENTRIES) {
                        total += start.elapsed();
                        m = Memtable::new();
                        start = Instant::now();
                    }
                    m.insert(&order.key(i), seq_of(i + 1, 0), ValueKind::Put, v.clone());
                }
                total + start.elapsed()
            })
        });
        g.bench_function("crossbeam_skipmap", |b| {
            b.iter_custom(|iters| {
                let mut m = SkipMap::new();
                let mut total = Duration::ZERO;
                let mut start = Instant::now();
                for i in 0..iters {
                    if i.is_multiple_of(MEMTABLE_ENTRIES) {
                        total += start.elapsed();
                        m = SkipMap::new();
                        start = Instant::now();
                    }
                    m.insert(order.key(i).to_vec(), v.clone());
                }
                total + start.elapsed()
            })
        });
        g.bench_function("fjall_no_fsync", |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let db = Database::builder(dir.path()).open().unwrap();
                let ks = db
                    .keyspace("bench", KeyspaceCreateOptions::default)
                    .unwrap();
                let start = Instant::now();
                for i in 0..iters {
                    ks.insert(order.key(i), &v[..]).unwrap();
                }
                start.elapsed()
            })
        });
        g.finish();
    }
}

fn memtable_get(c: &mut Criterion) {
    let v = Bytes::from(value(0, VALUE));
    for order in [Order::Random, Order::Ascending] {
        let mut g = c.benchmark_group(format!("memtable_get_{}", order.name()));
        g.throughput(Throughput::Elements(1));
        let ours = Memtable::new();
        let raw = SkipMap::new();
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("bench", KeyspaceCreateOptions::default)
            .unwrap();
        for i in 0..PRELOAD {
            ours.insert(&order.key(i), seq_of(i + 1, 0), ValueKind::Put, v.clone());
            raw.insert(order.key(i).to_vec(), v.clone());
            ks.insert(order.key(i), &v[..]).unwrap();
        }
        // Reads walk the keys in insertion order: random for random keys, ascending otherwise.
        let mut i = 0u64;
        g.bench_function("qastore", |b| {
            b.iter(|| {
                i = (i + 1) % PRELOAD;
                black_box(ours.get(&order.key(i), u64::MAX))
            })
        });
        g.bench_function("crossbeam_skipmap", |b| {
            b.iter(|| {
                i = (i + 1) % PRELOAD;
                black_box(raw.get(&order.key(i)[..]).map(|e| e.value().len()))
            })
        });
        g.bench_function("fjall", |b| {
            b.iter(|| {
                i = (i + 1) % PRELOAD;
                black_box(ks.get(order.key(i)).unwrap())
            })
        });
        g.finish();
    }
}

struct Tables {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    engine: Engine,
    fjall: fjall::Keyspace,
}

/// Both stores with the same 200k keys, flushed out of their memtables into tables.
fn tables() -> Tables {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let engine = Engine::open(OsVfs::shared(), ours.path(), EngineConfig::default()).unwrap();
    for chunk in 0..PRELOAD / 1000 {
        let mut b = WriteBatch::new();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            b.put(key16(i).to_vec(), value(i, VALUE));
        }
        engine.apply(&b, chunk + 1).unwrap();
    }
    engine.flush().unwrap();
    let db = Database::builder(theirs.path())
        .cache_size(256 << 20)
        .open()
        .unwrap();
    let ks = db
        .keyspace("bench", KeyspaceCreateOptions::default)
        .unwrap();
    for i in 0..PRELOAD {
        ks.insert(key16(i), value(i, VALUE)).unwrap();
    }
    ks.rotate_memtable_and_wait().unwrap();
    Tables {
        _dirs: (ours, theirs),
        engine,
        fjall: ks,
    }
}

fn table_reads(c: &mut Criterion) {
    let t = tables();
    let mut i = 0u64;
    let mut g = c.benchmark_group("sst_get_hit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("qastore", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            black_box(t.engine.get(&key16(i)).unwrap())
        })
    });
    g.bench_function("fjall", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            black_box(t.fjall.get(key16(i)).unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sst_get_miss");
    g.throughput(Throughput::Elements(1));
    g.bench_function("qastore", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            black_box(t.engine.get(&absent_key16(i)).unwrap())
        })
    });
    g.bench_function("fjall", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            black_box(t.fjall.get(absent_key16(i)).unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sst_scan_100");
    g.throughput(Throughput::Elements(100));
    g.bench_function("qastore", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            let from = key16(i);
            let n = t
                .engine
                .scan(Bound::Included(&from), Bound::Unbounded)
                .take(100)
                .map(|r| r.unwrap().1.len())
                .sum::<usize>();
            black_box(n)
        })
    });
    g.bench_function("fjall", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            let n = t
                .fjall
                .range(key16(i)..)
                .take(100)
                .map(|g| g.value().unwrap().len())
                .sum::<usize>();
            black_box(n)
        })
    });
    g.finish();

    // Criterion reports means; the seed target is about the tail, so sample it directly.
    let (mut ours, mut theirs) = (Latencies::new(), Latencies::new());
    for n in 0..100_000u64 {
        let k = key16((n * 7919) % PRELOAD);
        let s = Instant::now();
        black_box(t.engine.get(&k).unwrap());
        ours.record(s.elapsed());
        let s = Instant::now();
        black_box(t.fjall.get(k).unwrap());
        theirs.record(s.elapsed());
    }
    println!("sst_get_hit latency  qastore: {}", ours.summary());
    println!("sst_get_hit latency  fjall:   {}", theirs.summary());
}

criterion_group! {
    name = benches;
    config = config();
    targets = memtable_insert, memtable_get, table_reads
}
criterion_main!(benches);
