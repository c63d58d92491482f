//! The cost of `Ingestor::submit` on the caller's thread (what the trading path pays per
//! record), beside the bounded channels it is built on, measured in the same run: tokio's
//! `mpsc::Sender::try_send` and the standard library's `sync_channel` `try_send`.
//!
//! The ingestor writes to a cluster that is not there (its batches fail in the background), so
//! only the caller's side is measured; the queue is large enough that no call finds it full.
//! Every channel has a consumer draining it at the same time, as the ingestor's batching task
//! drains its queue.
//!
//! `cargo run --release -p qastore-benches --bin ingest_submit [-- --records N --rounds R]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use qastore_client::{Client, ClientConfig, Ingestor, IngestorConfig};
use qastore_cluster::convert::records::record_to_pb;
use qastore_exchange::record::samples;
use qastore_proto::v1 as pb;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Records submitted per round.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Rounds; the best is reported (the least disturbed by the machine).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Records per burst; the ingestor's queue is drained between bursts.
    #[arg(long, default_value_t = 1_000)]
    burst: usize,
}

fn records(n: usize) -> Vec<pb::Record> {
    let kinds: Vec<pb::Record> = samples::records().iter().map(record_to_pb).collect();
    (0..n).map(|i| kinds[i % kinds.len()].clone()).collect()
}

/// Best nanoseconds per call over the rounds.
fn best(rounds: usize, n: usize, mut round: impl FnMut(Vec<pb::Record>) -> Duration) -> f64 {
    (0..rounds)
        .map(|_| round(records(n)).as_nanos() as f64 / n as f64)
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let n = args.records;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let client = Arc::new(Client::new(
        &["127.0.0.1:1".to_string()],
        ClientConfig {
            retry_for: Duration::ZERO,
            ..ClientConfig::default()
        },
    )?);
    let options = IngestorConfig {
        queue_capacity: n + 1,
        ..IngestorConfig::default()
    };

    // Bursts, each drained before the next: the queue stays short, as on a trading path
    // whose cluster keeps up (a queue that backs up costs fresh memory on every call).
    let burst = args.burst.max(1);
    let drained = |ingestor: &Ingestor| {
        while ingestor.stats().in_flight > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let detached = best(args.rounds, n, |recs| {
        let ingestor = rt.block_on(async { Ingestor::start(client.clone(), options.clone()) });
        let mut elapsed = Duration::ZERO;
        let mut recs = recs.into_iter();
        loop {
            let chunk: Vec<pb::Record> = recs.by_ref().take(burst).collect();
            if chunk.is_empty() {
                break;
            }
            let t0 = Instant::now();
            for r in chunk {
                let _ = ingestor.submit_detached(r);
            }
            elapsed += t0.elapsed();
            drained(&ingestor);
        }
        rt.block_on(async { drop(ingestor) });
        elapsed
    });
    let with_completion = best(args.rounds, n, |recs| {
        let ingestor = rt.block_on(async { Ingestor::start(client.clone(), options.clone()) });
        let mut elapsed = Duration::ZERO;
        let mut recs = recs.into_iter();
        loop {
            let chunk: Vec<pb::Record> = recs.by_ref().take(burst).collect();
            if chunk.is_empty() {
                break;
            }
            let mut completions = Vec::with_capacity(chunk.len());
            let t0 = Instant::now();
            for r in chunk {
                if let Ok(c) = ingestor.submit(r) {
                    completions.push(c);
                }
            }
            elapsed += t0.elapsed();
            drained(&ingestor);
        }
        rt.block_on(async { drop(ingestor) });
        elapsed
    });
    // The peers get a consumer draining concurrently too, as the ingestor's batching task
    // does, and keep up with the sender.
    let tokio_mpsc = best(args.rounds, n, |recs| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<pb::Record>(n + 1);
        let drain = rt.spawn(async move { while rx.recv().await.is_some() {} });
        let t0 = Instant::now();
        for r in recs {
            let _ = tx.try_send(r);
        }
        let elapsed = t0.elapsed();
        drop(tx);
        let _ = rt.block_on(drain);
        elapsed
    });
    let std_sync = best(args.rounds, n, |recs| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<pb::Record>(n + 1);
        let drain = std::thread::spawn(move || while rx.recv().is_ok() {});
        let t0 = Instant::now();
        for r in recs {
            let _ = tx.try_send(r);
        }
        let elapsed = t0.elapsed();
        drop(tx);
        let _ = drain.join();
        elapsed
    });
    println!(
        "submit on the caller's thread, {n} records per round in bursts of {burst}, best of {} rounds",
        args.rounds
    );
    println!("{:<44} {:>10}", "call", "ns/call");
    for (name, ns) in [
        ("qastore Ingestor::submit_detached", detached),
        (
            "qastore Ingestor::submit (with completion)",
            with_completion,
        ),
        ("peer: tokio mpsc Sender::try_send", tokio_mpsc),
        ("peer: std sync_channel SyncSender::try_send", std_sync),
    ] {
        println!("{name:<44} {ns:>10.1}");
    }
    Ok(())
}
