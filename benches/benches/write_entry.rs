//! What the leader does to a client's batch before proposing it (every stateless check, the
//! dedup hash and the log entry's bytes), and what every node does to decode the entry.
//!
//! * `archived_once`: [`EncodedWrite::new`] then [`EncodedWrite::into_entry`], the write path
//!   of a node: the records are archived once, that archive is hashed and carried by the entry.
//! * `earlier_format`, the peer: the same checks, then the hash of every record archived on its
//!   own and the whole command archived again ([`WriteCommand::new`], how writes were logged
//!   before), which a node still decodes.
//!
//! * `entry_decode`: what every node does with the entry before applying it, beside the
//!   earlier format: `Command::from_entry` and the records decoded from their archive, against
//!   the earlier command decoded whole.
//!
//! All take batches of 1, 10 and 100 records of a realistic mix (ticks, books, orders, fills,
//! accounts, positions). Run: `cargo bench -p qastore-benches --bench write_entry` (about a
//! minute).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::record::{decode, encode, validate_batch, Record};
use qastore_exchange::{Ack, Command, EncodedWrite, WriteCommand};

// The allocator the qastore binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// The first `n` records of a generated trading day.
fn records(n: usize) -> Vec<Record> {
    let cal = TradingCalendar::builtin();
    let mut gen = ExchangeGen::new(GenConfig::default(), cal);
    gen.trading_day(20241202)
        .into_iter()
        .flatten()
        .take(n)
        .collect()
}

fn write_entry(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_entry");
    for n in [1, 10, 100] {
        let batch = records(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("archived_once", n), &batch, |b, batch| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    EncodedWrite::new("gw-1", 7, Ack::Quorum, batch)
                        .unwrap()
                        .into_entry()
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("earlier_format", n), &batch, |b, batch| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    validate_batch(&batch).unwrap();
                    let cmd = WriteCommand::new("gw-1", 7, Ack::Quorum, batch);
                    encode(&Command::Write(cmd))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn entry_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("entry_decode");
    for n in [1, 10, 100] {
        let batch = records(n);
        g.throughput(Throughput::Elements(n as u64));
        let new = EncodedWrite::new("gw-1", 7, Ack::Quorum, batch.clone())
            .unwrap()
            .into_entry();
        let old = encode(&Command::Write(WriteCommand::new(
            "gw-1",
            7,
            Ack::Quorum,
            batch,
        )));
        g.bench_with_input(BenchmarkId::new("archived_once", n), &new, |b, e| {
            b.iter(|| match Command::from_entry(e).unwrap() {
                Command::EncodedWrite(w) => w.decode_records().unwrap().len(),
                _ => 0,
            })
        });
        g.bench_with_input(BenchmarkId::new("earlier_format", n), &old, |b, e| {
            b.iter(|| match decode::<Command>(e).unwrap() {
                Command::Write(w) => w.records.len(),
                _ => 0,
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = write_entry, entry_decode
}
criterion_main!(benches);
