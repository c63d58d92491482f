//! `qastore bench`: concurrent writers (through the leader) and readers (on the followers, at
//! each consistency) against a running cluster, with a progress bar; reports throughput and
//! latency percentiles per operation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use qastore_cluster::client::{Client, ClientOptions};
use qastore_proto::v1 as pb;
use serde_json::json;

use crate::output::{print, Format, Table};
use crate::workload::Workload;

/// Load a running cluster.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qastore demo --keep && qastore bench --duration-secs 10
  qastore bench --endpoints 10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001 --writers 32 --batch 100 --readers 8")]
pub struct BenchArgs {
    /// Client API addresses of the cluster's nodes, comma-separated.
    #[arg(
        long,
        env = "QASTORE_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    endpoints: Vec<String>,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Records per write.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Concurrent readers (spread over the followers and the three consistencies).
    #[arg(long, default_value_t = 6)]
    readers: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// For bounded reads: the staleness bound.
    #[arg(long, default_value_t = 1000)]
    max_staleness_ms: u64,
    /// How to print the results.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// Latencies and failures of one kind of operation.
struct Op {
    name: String,
    hist: Histogram<u64>,
    errors: u64,
    records: u64,
}

impl Op {
    fn new(name: &str) -> Op {
        Op {
            name: name.into(),
            hist: Histogram::new(3).expect("3 significant figures is a valid histogram"),
            errors: 0,
            records: 0,
        }
    }
}

/// Runs the bench.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let client = Arc::new(
        Client::new(
            &args.endpoints,
            ClientOptions {
                client_id: format!("bench-{}", std::process::id()),
                ..ClientOptions::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );
    let (leader, leader_api) = client.find_leader().await.map_err(|e| e.to_string())?;
    let followers: Vec<String> = args
        .endpoints
        .iter()
        .filter(|e| **e != leader_api)
        .cloned()
        .collect();
    let followers = if followers.is_empty() {
        vec![leader_api.clone()]
    } else {
        followers
    };
    let workload = Arc::new(Mutex::new(Workload::new(42, 8, 50)));
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs(args.duration_secs.max(1));
    let bar = ProgressBar::new(duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} s  {msg}")
            .map_err(|e| e.to_string())?,
    );
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.writers {
        let (client, workload, stop, written) = (
            client.clone(),
            workload.clone(),
            stop.clone(),
            written.clone(),
        );
        let batch = args.batch.max(1);
        tasks.push(tokio::spawn(async move {
            let mut op = Op::new("write");
            while !stop.load(Ordering::Relaxed) {
                let records: Vec<pb::Record> = {
                    let mut w = workload.lock();
                    (0..batch).map(|_| w.next_pb()).collect()
                };
                let t0 = Instant::now();
                match client.write(records, pb::AckLevel::Quorum).await {
                    Ok(_) => {
                        let _ = op.hist.record(t0.elapsed().as_micros() as u64);
                        op.records += batch as u64;
                        written.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                    Err(_) => op.errors += 1,
                }
            }
            op
        }));
    }
    let consistencies = [
        ("read linearizable", pb::Consistency::Linearizable),
        ("read bounded", pb::Consistency::Bounded),
        ("read local", pb::Consistency::Local),
    ];
    for i in 0..args.readers {
        let (client, stop) = (client.clone(), stop.clone());
        let (name, consistency) = consistencies[i % consistencies.len()];
        let addr = followers[i % followers.len()].clone();
        let staleness = args.max_staleness_ms;
        tasks.push(tokio::spawn(async move {
            let mut op = Op::new(name);
            let mut n = 0u64;
            let Ok(mut store) = client.store_at(&addr) else {
                return op;
            };
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let req = pb::GetAccountsRequest {
                    user_id: format!("u{:04}", n % 50 + 1),
                    currency: String::new(),
                    read: Some(pb::ReadOptions {
                        consistency: consistency as i32,
                        max_staleness_ms: staleness,
                        min_applied_index: 0,
                    }),
                };
                let t0 = Instant::now();
                match store.get_accounts(client.request(req)).await {
                    Ok(_) => {
                        let _ = op.hist.record(t0.elapsed().as_micros() as u64);
                        op.records += 1;
                    }
                    Err(_) => op.errors += 1,
                }
            }
            op
        }));
    }
    let started = Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.inc(1);
        bar.set_message(format!(
            "{:.0} records/s written",
            written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut merged: Vec<Op> = Vec::new();
    for t in tasks {
        let op = t.await.map_err(|e| e.to_string())?;
        match merged.iter_mut().find(|m| m.name == op.name) {
            Some(m) => {
                let _ = m.hist.add(&op.hist);
                m.errors += op.errors;
                m.records += op.records;
            }
            None => merged.push(op),
        }
    }
    let secs = elapsed.as_secs_f64();
    let ms = |v: u64| v as f64 / 1000.0;
    let rows: Vec<serde_json::Value> = merged
        .iter()
        .map(|o| {
            json!({
                "op": o.name,
                "ops": o.hist.len(),
                "ops_per_sec": o.hist.len() as f64 / secs,
                "records_per_sec": o.records as f64 / secs,
                "p50_ms": ms(o.hist.value_at_quantile(0.5)),
                "p99_ms": ms(o.hist.value_at_quantile(0.99)),
                "p999_ms": ms(o.hist.value_at_quantile(0.999)),
                "errors": o.errors,
            })
        })
        .collect();
    print(
        args.output,
        &json!({"leader": leader, "seconds": secs, "writers": args.writers, "batch": args.batch, "readers": args.readers, "results": rows}),
        || {
            let mut t = Table::new(&["OP", "OPS/S", "RECORDS/S", "P50", "P99", "P999", "ERRORS"]);
            for o in &merged {
                t.row(vec![
                    o.name.clone(),
                    format!("{:.0}", o.hist.len() as f64 / secs),
                    format!("{:.0}", o.records as f64 / secs),
                    format!("{:.2} ms", ms(o.hist.value_at_quantile(0.5))),
                    format!("{:.2} ms", ms(o.hist.value_at_quantile(0.99))),
                    format!("{:.2} ms", ms(o.hist.value_at_quantile(0.999))),
                    o.errors.to_string(),
                ]);
            }
            format!(
                "{} writers x {} records per write, {} follower readers, {:.1} s (leader: node {leader})\n{}",
                args.writers, args.batch, args.readers, secs, t.render()
            )
        },
    );
    Ok(())
}
