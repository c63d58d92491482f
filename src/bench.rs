//! `qastore bench`: concurrent writers (through the leader) and readers (on the followers, at
//! each consistency) against a running cluster, with a progress bar; reports throughput and
//! latency percentiles per operation. The load engine is the one the etcd comparison uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::ProgressBar;
use qastore_client::{Client, ClientConfig, StageSummary};
use qastore_proto::v1 as pb;
use qastore_testkit::load::{closed_loop, LoadResult, Window};
use serde_json::json;

use crate::output::{print, whole, Format, Table};
use crate::record_feed::RecordFeed;
use qastore_testkit::workload::{Placement, Workload};

/// Load a running cluster.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qastore demo --keep && qastore bench --duration-secs 10
  qastore bench --endpoints 10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001 --writers 32 --batch 100 --readers 8")]
pub struct BenchArgs {
    /// Client API addresses of the cluster's nodes, comma-separated: host:port or
    /// http://host:port.
    #[arg(
        long,
        env = "QASTORE_ENDPOINTS",
        value_delimiter = ',',
        value_parser = crate::ctl::endpoint::parse_endpoint,
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
    /// How long to measure.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// For bounded reads: the staleness bound.
    #[arg(long, default_value_t = 1000)]
    max_staleness_ms: u64,
    /// Send each write as a unary call instead of on the client's write stream (to compare
    /// the two).
    #[arg(long)]
    unary_writes: bool,
    /// How to print the results.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(flatten)]
    tls: crate::client_tls::TlsArgs,
}

/// Users the bench writes and reads.
const BENCH_USERS: usize = 50;

/// Records kept ready for the writers: more than they write while the next trading day is
/// generated.
const FEED_AHEAD_RECORDS: usize = 50_000;

/// One kind of operation of the bench and what it measured.
struct Measured {
    name: &'static str,
    result: LoadResult,
}

/// The table "where a write's time goes": one row per stage the nodes counted.
fn stage_table(stages: &[StageSummary]) -> String {
    if stages.is_empty() {
        return "(the nodes' write stages could not be read)".to_string();
    }
    let mut t = Table::new(&["STAGE", "COUNT", "P50", "P99", "MEAN"]);
    for s in stages {
        t.row(vec![
            s.stage.clone(),
            s.count.to_string(),
            format!("{:.0} us", s.p50_us),
            format!("{:.0} us", s.p99_us),
            format!("{:.0} us", s.mean_us),
        ]);
    }
    format!(
        "Where a write's time goes (the leader's chain validate..answer adds up to total; \
         leader_fsync, send and follower_round_trip run beside commit):\n{}",
        t.render()
    )
}

/// Runs the bench: writers and readers at once, each group a closed loop of the shared load
/// engine (`qastore_testkit::load`), measured over the same window.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let presented = args.tls.resolve()?;
    let client = Arc::new(
        Client::new(
            &args.endpoints,
            ClientConfig {
                client_id: format!("bench-{}", std::process::id()),
                stream_writes: !args.unary_writes,
                tls: presented.tls,
                token: presented.token,
                ..ClientConfig::default()
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
    let followers = Arc::new(if followers.is_empty() {
        vec![leader_api.clone()]
    } else {
        followers
    });
    let window = Window {
        warmup: Duration::from_secs(args.warmup_secs),
        measure: Duration::from_secs(args.duration_secs.max(1)),
    };
    let bar = ProgressBar::new(args.warmup_secs + window.measure.as_secs());
    bar.set_style(crate::output::progress_style(
        "  {bar:40} {pos}/{len} s  {msg}",
    )?);
    let written = Arc::new(AtomicU64::new(0));
    // Users and instruments of the bench's own, so that loading the demo's cluster leaves the
    // demo's data as it was.
    let placement = Placement::BENCH;
    let batch = args.batch.max(1);
    // Records are made ahead, off the writers' path (generating them is not writing them).
    let feed = Arc::new(RecordFeed::start(
        Workload::placed(42, 8, BENCH_USERS, placement),
        batch,
        (FEED_AHEAD_RECORDS / batch).max(args.writers * 2),
    )?);
    feed.primed().await?;
    let writes = {
        let (client, feed, written) = (client.clone(), feed.clone(), written.clone());
        closed_loop(args.writers, window, move |_, _| {
            let (client, feed, written) = (client.clone(), feed.clone(), written.clone());
            async move {
                let records = feed.next().await?;
                client
                    .write(records, pb::AckLevel::Quorum)
                    .await
                    .map_err(|e| e.to_string())?;
                written.fetch_add(batch as u64, Ordering::Relaxed);
                Ok(batch as u64)
            }
        })
    };
    // Readers are spread over the three consistencies (and over the followers).
    let readers_of = |k: usize| (args.readers + 2 - k) / 3;
    let reads = |consistency: pb::Consistency, readers: usize| {
        let (client, followers) = (client.clone(), followers.clone());
        let staleness = args.max_staleness_ms;
        closed_loop(readers, window, move |worker, seq| {
            let (client, followers) = (client.clone(), followers.clone());
            async move {
                let addr = &followers[worker % followers.len()];
                let mut store = client.store_at(addr).map_err(|e| e.to_string())?;
                let req = pb::GetAccountsRequest {
                    user_id: placement.user(seq as usize % BENCH_USERS + 1),
                    currency: String::new(),
                    read: Some(pb::ReadOptions {
                        consistency: consistency as i32,
                        max_staleness_ms: staleness,
                        min_applied_index: 0,
                    }),
                };
                store
                    .get_accounts(client.request(req))
                    .await
                    .map(|_| 1)
                    .map_err(|s| s.message().to_string())
            }
        })
    };
    let ticker = {
        let (bar, written) = (bar.clone(), written.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
                bar.set_message(format!(
                    "{} records/s written",
                    whole(written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
                ));
            }
        })
    };
    // The nodes' write-stage histograms once the warm-up is over, to subtract from a reading
    // at the end: the breakdown covers the measured window.
    let stages_before = {
        let (client, warmup) = (client.clone(), window.warmup);
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            client.write_stages().await
        })
    };
    let (w, lin, bounded, local) = tokio::join!(
        writes,
        reads(pb::Consistency::Linearizable, readers_of(0)),
        reads(pb::Consistency::Bounded, readers_of(1)),
        reads(pb::Consistency::Local, readers_of(2)),
    );
    ticker.abort();
    bar.finish_and_clear();
    let stages = match (stages_before.await, client.write_stages().await) {
        (Ok(Ok(before)), Ok(after)) => after.since(&before).summaries(),
        (Ok(Err(e)), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "the nodes' write stages could not be read");
            Vec::new()
        }
        (Err(e), _) => {
            tracing::warn!(error = %e, "the nodes' write stages could not be read");
            Vec::new()
        }
    };
    let mut measured = vec![Measured {
        name: "write",
        result: w,
    }];
    for (name, readers, result) in [
        ("read linearizable", readers_of(0), lin),
        ("read bounded", readers_of(1), bounded),
        ("read local", readers_of(2), local),
    ] {
        if readers > 0 {
            measured.push(Measured { name, result });
        }
    }
    let secs = window.measure.as_secs_f64();
    let rows: Vec<serde_json::Value> = measured
        .iter()
        .map(|m| {
            let r = &m.result;
            json!({
                "op": m.name,
                "ops": r.ops,
                "ops_per_sec": r.ops_per_sec(),
                "records_per_sec": r.records_per_sec(),
                "p50_ms": r.latency_ms(0.5),
                "p99_ms": r.latency_ms(0.99),
                "p999_ms": r.latency_ms(0.999),
                "errors": r.errors,
                "cpu_busy": r.cpu.busy,
                "cpu_steal": r.cpu.steal,
            })
        })
        .collect();
    let stage_rows: Vec<serde_json::Value> = stages
        .iter()
        .map(|s| {
            json!({"stage": s.stage, "count": s.count, "p50_us": s.p50_us, "p99_us": s.p99_us, "mean_us": s.mean_us})
        })
        .collect();
    print(
        args.output,
        &json!({"leader": leader, "seconds": secs, "writers": args.writers, "batch": args.batch, "readers": args.readers, "results": rows, "write_stages": stage_rows}),
        || {
            let mut t = Table::new(&["OP", "OPS/S", "RECORDS/S", "P50", "P99", "P999", "ERRORS"]);
            for m in &measured {
                let r = &m.result;
                t.row(vec![
                    m.name.to_string(),
                    format!("{:.0}", r.ops_per_sec()),
                    format!("{:.0}", r.records_per_sec()),
                    format!("{:.2} ms", r.latency_ms(0.5)),
                    format!("{:.2} ms", r.latency_ms(0.99)),
                    format!("{:.2} ms", r.latency_ms(0.999)),
                    r.errors.to_string(),
                ]);
            }
            let cpu = measured[0].result.cpu;
            format!(
                "{} writers x {} records per write, {} follower readers, {:.1} s measured after {} s of warm-up (leader: node {leader}; CPU {:.0}% busy, {:.0}% stolen)\n{}\n{}",
                args.writers,
                args.batch,
                args.readers,
                secs,
                args.warmup_secs,
                cpu.busy * 100.0,
                cpu.steal * 100.0,
                t.render(),
                stage_table(&stages),
            )
        },
    );
    Ok(())
}
