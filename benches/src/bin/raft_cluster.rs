//! Replication throughput and latency of a three-node QAStore cluster.
//!
//! Three nodes run in this process, each with its own data directory, Raft log and engine,
//! talking over loopback gRPC with real fsyncs. Concurrent writers send realistic exchange
//! batches (ticks, books, orders, fills, account updates) to the leader through the node API and
//! wait for each to be committed and applied. For batch sizes 1, 10 and 100 the run reports
//! acknowledged records/s and batches/s, latency P50/P99/P999, and fsyncs per second on each
//! node. Beside each row, the same load on a single node (no replication, same fsyncs) shows
//! what replication costs.
//!
//! This measures replication and apply; the client API's own cost is measured end to end by
//! the cluster benchmark against etcd.
//!
//! ```text
//! cargo run --release -p qastore-benches --bin raft_cluster -- --secs 10 --clients 32
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use qastore_benches::Latencies;
use qastore_cluster::{write_request, ExchangeNode};
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::record::Record;
use qastore_exchange::{Ack, EncodedWrite};
use qastore_lsm::wal::WalConfig;
use qastore_lsm::EngineConfig;
use qastore_raft::{NodeId, RaftConfig, RaftNodeConfig, Role};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Replication benchmark of a three-node cluster.
#[derive(Debug, Parser)]
struct Args {
    /// Seconds measured per row.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Batch sizes to run.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    batches: Vec<usize>,
    /// Where the nodes keep their data (on the disk being measured).
    #[arg(long, default_value = "target/bench-data/raft_cluster")]
    dir: PathBuf,
    /// Skip the single-node rows.
    #[arg(long)]
    no_single: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn start(root: &std::path::Path, ids: &[NodeId]) -> BTreeMap<NodeId, ExchangeNode> {
    let mut nodes = BTreeMap::new();
    for &id in ids {
        let port = free_port();
        let config = RaftNodeConfig {
            cluster_id: "bench".into(),
            node_id: id,
            data_dir: root.join(format!("n{id}")),
            raft_listen: format!("127.0.0.1:{port}").parse().expect("address"),
            raft_advertise: None,
            api_advertise: "127.0.0.1:0".into(),
            raft: RaftConfig::default(),
            engine: EngineConfig::default(),
            wal: WalConfig::default(),
            dial_overrides: Default::default(),
            tls: None,
        };
        nodes.insert(id, ExchangeNode::start(config).await.expect("node starts"));
    }
    let members = nodes.iter().map(|(id, n)| (*id, n.peer_node())).collect();
    nodes[&ids[0]]
        .initialize(members)
        .await
        .expect("cluster initializes");
    loop {
        if nodes.values().any(|n| n.status().role == Role::Leader)
            && nodes.values().all(|n| n.status().leader.is_some())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes
}

/// Realistic records, cycled through by the writers.
fn records() -> Vec<Record> {
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
    let mut out = Vec::new();
    let mut day = 20241202;
    while out.len() < 400_000 {
        out.extend(gen.trading_day(day).into_iter().flatten());
        day = cal.next_trading_day(day);
    }
    out
}

struct Row {
    records_per_sec: f64,
    batches_per_sec: f64,
    latencies: Latencies,
    fsyncs_per_sec: BTreeMap<NodeId, f64>,
}

async fn run(
    nodes: &BTreeMap<NodeId, ExchangeNode>,
    data: &Arc<Vec<Record>>,
    batch: usize,
    clients: usize,
    secs: u64,
) -> Row {
    let leader = nodes
        .values()
        .find(|n| n.status().role == Role::Leader)
        .expect("a leader");
    let fsyncs_before: BTreeMap<NodeId, u64> = nodes
        .iter()
        .map(|(id, n)| (*id, n.wal_stats().fsyncs()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let leader = Arc::new(leader);
    let results = futures::future::join_all((0..clients).map(|c| {
        let (leader, data, stop, done) = (leader.clone(), data.clone(), stop.clone(), done.clone());
        async move {
            let mut lat = Latencies::new();
            let mut at = (c * 7919 * batch) % data.len();
            let mut request = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if at + batch > data.len() {
                    at = 0;
                }
                let records = data[at..at + batch].to_vec();
                at += batch;
                request += 1;
                let t = Instant::now();
                // Validated inside the timing, as a node's write path does.
                let cmd =
                    EncodedWrite::new(&format!("bench-{batch}-{c}"), request, Ack::Quorum, records)
                        .expect("generated records are valid");
                let (req, all_voters) = write_request(cmd);
                match leader.write(req, all_voters, Duration::from_secs(30)).await {
                    Ok(_) => {
                        lat.record(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(qastore_raft::Error::Overloaded(_)) => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            lat
        }
    }));
    let timer = async {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
    };
    let (lats, ()) = tokio::join!(results, timer);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Latencies::new();
    for l in &lats {
        latencies.merge(l);
    }
    let batches = done.load(Ordering::Relaxed) as f64;
    let fsyncs_per_sec = nodes
        .iter()
        .map(|(id, n)| {
            let d = n.wal_stats().fsyncs() - fsyncs_before[id];
            (*id, d as f64 / elapsed)
        })
        .collect();
    Row {
        records_per_sec: batches * batch as f64 / elapsed,
        batches_per_sec: batches / elapsed,
        latencies,
        fsyncs_per_sec,
    }
}

fn print_row(label: &str, batch: usize, r: &Row) {
    let fsyncs: Vec<String> = r
        .fsyncs_per_sec
        .iter()
        .map(|(id, f)| format!("n{id} {f:.0}"))
        .collect();
    println!(
        "{label:<12} batch {batch:>4}  {:>10.0} records/s  {:>9.0} batches/s  {}  fsyncs/s: {}",
        r.records_per_sec,
        r.batches_per_sec,
        r.latencies.summary(),
        fsyncs.join(", ")
    );
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let _ = std::fs::remove_dir_all(&args.dir);
        let data = Arc::new(records());
        println!(
            "{} writers, {} s per row, data in {}",
            args.clients,
            args.secs,
            args.dir.display()
        );
        let three = start(&args.dir.join("three"), &[1, 2, 3]).await;
        let single = if args.no_single {
            None
        } else {
            Some(start(&args.dir.join("single"), &[11]).await)
        };
        for &batch in &args.batches {
            let row = run(&three, &data, batch, args.clients, args.secs).await;
            print_row("3 nodes", batch, &row);
            if let Some(single) = &single {
                let row = run(single, &data, batch, args.clients, args.secs).await;
                print_row("1 node", batch, &row);
            }
        }
        for n in three.values().chain(single.iter().flat_map(|s| s.values())) {
            let _ = n.shutdown().await;
        }
    });
    let _ = std::fs::remove_dir_all(&args.dir);
}
