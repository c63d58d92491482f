//! `qastore demo`: the main job on its default settings. Starts a local three-node cluster
//! (three `qastore serve` processes on 127.0.0.1), streams a realistic exchange workload
//! through the ingestor, reads it back from followers at each consistency, kills the leader,
//! shows the new leader and that every acknowledged write is still there, restarts the killed
//! node and checks that all replicas are identical, checks a live subscriber that followed
//! every committed event through all of it against the journal, and prints a summary. `--stop` stops the
//! nodes a kept demo left running.

mod check;
mod dir;
mod subscriber;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use qastore_client::{Client, ClientConfig, Ingestor, IngestorConfig, SubmitError};
use qastore_exchange::record::Record;
use qastore_proto::v1 as pb;

use crate::output::{out, outln, Table};
use check::{Ack, Promise};
use qastore_client::drill;
use qastore_testkit::workload::Workload;
use qastore_testkit::{ClusterSpec, ProcCluster};

/// Run the demo.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cargo run --release -- demo
  qastore demo --records 1000000 --keep    # then: qastore ctl status
  qastore demo --stop                      # stops the kept cluster's nodes
  qastore demo --fresh                     # wipes the previous demo's directory first")]
pub struct DemoArgs {
    /// Where the nodes keep their data, configs, logs and pids (created if missing).
    #[arg(long, default_value = crate::client_tls::DEMO_DIR)]
    dir: PathBuf,
    /// Wipe the directory of an earlier demo first (never one whose nodes still run).
    #[arg(long)]
    fresh: bool,
    /// Stop the nodes a `--keep` demo left running in --dir (exactly those), then exit.
    #[arg(long, conflicts_with_all = ["fresh", "keep"])]
    stop: bool,
    /// Records to stream.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Instruments in the workload.
    #[arg(long, default_value_t = 8)]
    instruments: usize,
    /// Users in the workload.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Seed of the workload.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Leave the cluster running at the end (for `qastore ctl`), also when a check fails.
    #[arg(long)]
    keep: bool,
}

/// What the workload should have left in the store.
#[derive(Debug, Default)]
struct Expected {
    orders: BTreeMap<String, u64>,
    ticks: BTreeMap<String, u64>,
}

impl Expected {
    fn add(&mut self, r: &Record) {
        match r {
            Record::OrderInsert(o) => *self.orders.entry(o.user_id.clone()).or_default() += 1,
            Record::Tick(t) => *self.ticks.entry(t.instrument_id.clone()).or_default() += 1,
            _ => {}
        }
    }
}

/// How long the read-back waits for a follower too stale for a bounded read to catch up.
const BOUNDED_PATIENCE: Duration = Duration::from_secs(10);

fn step(n: u32, text: &str) {
    outln!("\n[{n}/7] {text}");
}

async fn wait_for_leader(client: &Client, within: Duration) -> Result<(u64, String), String> {
    let started = Instant::now();
    loop {
        match client.find_leader().await {
            Ok(l) => return Ok(l),
            Err(e) if started.elapsed() > within => return Err(format!("no leader: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs the demo (or, with `--stop`, stops a kept one).
pub async fn run(args: DemoArgs) -> Result<(), String> {
    if args.stop {
        outln!("{}", dir::stop(&args.dir)?);
        return Ok(());
    }
    dir::prepare(&args.dir, args.fresh)?;
    step(1, "starting a three-node cluster on 127.0.0.1");
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut spec = ClusterSpec::local(&exe, &args.dir, 3, "qastore-demo");
    // Secure by default: the demo runs as a cluster should, on mutual TLS with roles.
    spec.tls = true;
    let cluster = ProcCluster::create(spec)?;
    let endpoints = cluster.endpoints();
    let cluster = Arc::new(Mutex::new(cluster));
    let outcome = demo(&args, &cluster).await;
    let mut cluster = cluster
        .lock()
        .map_err(|_| "the cluster handle is poisoned".to_string())?;
    if args.keep {
        cluster.detach();
        let headline = match outcome {
            Ok(()) => "The cluster keeps running.",
            Err(_) => "The cluster is left running for inspection (logs in the directory above).",
        };
        // ctl and bench find the demo's certificates in its default directory by themselves.
        let certs = if args.dir == std::path::Path::new(crate::client_tls::DEMO_DIR) {
            String::new()
        } else {
            format!(" --cert-dir {}", args.dir.join("certs").display())
        };
        let e = endpoints.join(",");
        outln!(
            "{headline} Try:\n  qastore ctl --endpoints {e}{certs} status\n  qastore ctl --endpoints {e}{certs} orders --user u0001 --consistency local --node {}\n  qastore bench --endpoints {e}{certs}\nStop it with: qastore demo --stop --dir {}",
            endpoints[1],
            args.dir.display()
        );
    } else {
        cluster.stop_all(Duration::from_secs(10));
    }
    outcome
}

/// The demo's steps on the prepared cluster.
async fn demo(args: &DemoArgs, cluster: &Arc<Mutex<ProcCluster>>) -> Result<(), String> {
    let (endpoints, tls) = {
        let mut c = cluster
            .lock()
            .map_err(|_| "the cluster handle is poisoned".to_string())?;
        for id in 1..=3 {
            c.spawn(id, id == 1)?;
        }
        for n in c.nodes.values() {
            outln!(
                "  node {}: api {}  raft {}  http://{}/metrics",
                n.id,
                n.api,
                n.raft,
                n.http
            );
        }
        if !c.on_default_ports() {
            outln!(
                "  note: the usual ports (7001-7003, 7101-7103, 7201-7203) are taken, so these \
                 were chosen instead: pass --endpoints {} to ctl and bench",
                c.endpoints().join(",")
            );
        }
        if let Some(certs) = c.certs_dir() {
            outln!(
                "  mutual TLS with roles: the CA and certificates are in {} (ctl and bench run \
                 here find the operator's certificate, client {}, by themselves)",
                certs.display(),
                crate::client_tls::DEMO_CLIENT
            );
        }
        (c.endpoints(), c.client_tls().cloned())
    };
    let client = Arc::new(
        Client::new(
            &endpoints,
            ClientConfig {
                client_id: "demo-ingestor".into(),
                tls: tls.clone(),
                ..ClientConfig::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );
    let started = Instant::now();
    let (leader, _) = wait_for_leader(&client, Duration::from_secs(30)).await?;
    outln!(
        "  data, configs and logs in {}; node {leader} leads after {} ms",
        args.dir.display(),
        started.elapsed().as_millis()
    );
    let live = subscriber::start(&client)?;
    outln!("  a live subscriber follows every committed event (a follower serves it)");

    step(2, "streaming an exchange workload through the ingestor");
    let ingest = ingest(&client, args).await?;
    outln!(
        "  {} records in {:.1} s: {:.0} records/s, {} batches, {} retries, {} refused by a full queue (resubmitted)",
        ingest.records,
        ingest.elapsed.as_secs_f64(),
        ingest.records as f64 / ingest.elapsed.as_secs_f64(),
        ingest.batches,
        ingest.retried,
        ingest.queue_full,
    );

    step(3, "reading back from the followers at each consistency");
    read_back(&client, &ingest).await?;

    step(4, "failover drill: killing the leader");
    let kill_cluster = cluster.clone();
    let report = drill::run(
        |o| {
            let o = ClientConfig {
                tls: tls.clone(),
                ..o
            };
            Client::new(&endpoints, o).map_err(|e| e.to_string())
        },
        drill::DrillConfig {
            mode: drill::Mode::Kill,
            max_unavailable: Some(Duration::from_secs(10)),
            max_lag: 100_000,
            give_up_after: Duration::from_secs(60),
        },
        |leader, _api| async move {
            kill_cluster
                .lock()
                .map_err(|_| "the cluster handle is poisoned".to_string())?
                .kill(leader)
                .map_err(String::from)
        },
    )
    .await;
    out!("{}", indent(&report.text()));
    let old_leader = report.old_leader.ok_or("the drill found no leader")?;

    step(5, "checking that every acknowledged write is still there");
    let checked = verify_all(&client, &ingest.expected).await?;
    outln!("  {checked}");

    step(6, "restarting the killed node and comparing the replicas");
    cluster
        .lock()
        .map_err(|_| "the cluster handle is poisoned")?
        .spawn(old_leader, false)?;
    let (hashes, hash_index) = compare_replicas(&client).await?;
    outln!("  {hashes}");

    step(7, "checking the live subscriber against the journal");
    let (_, leader_api) = client.find_leader().await.map_err(|e| e.to_string())?;
    let live = subscriber::finish(live, &client, &leader_api, hash_index).await?;
    outln!(
        "  {} events received through the leader's kill (resumed {} times, {} repeats dropped on resuming), checked against the journal: {} gaps, {} duplicates",
        live.check.received,
        live.reconnects,
        live.repeats_dropped,
        live.check.gaps,
        live.check.duplicates.len()
    );
    if !live.check.ok() {
        return Err(format!(
            "the live subscriber's events differ from the journal: {}",
            live.check.describe()
        ));
    }

    let lat = &ingest.latency;
    let mut t = Table::new(&["MEASURE", "VALUE"]);
    let ms = |v: u64| format!("{:.2} ms", v as f64 / 1000.0);
    t.row(vec!["records written".into(), ingest.records.to_string()]);
    t.row(vec![
        "throughput".into(),
        format!(
            "{:.0} records/s",
            ingest.records as f64 / ingest.elapsed.as_secs_f64()
        ),
    ]);
    t.row(vec![
        "latency p50 (submit to ack)".into(),
        ms(lat.value_at_quantile(0.5)),
    ]);
    t.row(vec!["latency p99".into(), ms(lat.value_at_quantile(0.99))]);
    t.row(vec![
        "latency p999".into(),
        ms(lat.value_at_quantile(0.999)),
    ]);
    t.row(vec![
        "failover: time to new leader".into(),
        report
            .time_to_new_leader
            .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
    ]);
    t.row(vec![
        "failover: writes unavailable".into(),
        report
            .write_unavailable
            .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
    ]);
    t.row(vec!["acknowledged writes lost".into(), "0".into()]);
    t.row(vec!["replicas identical".into(), "yes".into()]);
    t.row(vec![
        "live subscriber: events received".into(),
        live.check.received.to_string(),
    ]);
    t.row(vec![
        "live subscriber: gaps".into(),
        live.check.gaps.to_string(),
    ]);
    t.row(vec![
        "live subscriber: duplicates".into(),
        live.check.duplicates.len().to_string(),
    ]);
    outln!("\nSummary\n{}", indent(&t.render()));

    if report.verdict != drill::Verdict::Pass {
        return Err(format!(
            "the failover drill did not pass: {}",
            report.reason
        ));
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

struct Ingested {
    records: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    batches: u64,
    retried: u64,
    queue_full: u64,
    last_index: u64,
    expected: Expected,
    /// Each user's acknowledged orders.
    acks: BTreeMap<String, Vec<Ack>>,
}

async fn ingest(client: &Arc<Client>, args: &DemoArgs) -> Result<Ingested, String> {
    // A short queue: the producer runs flat out, so a long one would only measure queueing.
    let ingestor = Ingestor::start(
        client.clone(),
        IngestorConfig {
            queue_capacity: 1_000,
            ..IngestorConfig::default()
        },
    );
    let mut workload = Workload::new(args.seed, args.instruments, args.users);
    let bar = ProgressBar::new(args.records);
    bar.set_style(crate::output::progress_style(
        "  {bar:40} {pos}/{len} records  {rate}  {msg}",
    )?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let collector_bar = bar.clone();
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let collector = tokio::spawn(async move {
        let mut last_index = 0;
        let mut failed = 0u64;
        let mut acks: BTreeMap<String, Vec<Ack>> = BTreeMap::new();
        while let Some((submitted, order_of, done)) = rx.recv().await {
            let done: qastore_client::Completion = done;
            let order_of: Option<String> = order_of;
            match done.await {
                Ok(Ok(ack)) => {
                    let now = Instant::now();
                    let _ = hist.record(now.duration_since(submitted).as_micros() as u64);
                    last_index = last_index.max(ack.log_index);
                    if let Some(user) = order_of {
                        acks.entry(user).or_default().push(Ack {
                            at: now,
                            index: ack.log_index,
                        });
                    }
                }
                _ => failed += 1,
            }
            collector_bar.inc(1);
        }
        (hist, last_index, failed, acks)
    });
    let mut expected = Expected::default();
    let mut queue_full = 0;
    let started = Instant::now();
    for _ in 0..args.records {
        let record = workload.next_record();
        expected.add(&record);
        let order_of = match &record {
            Record::OrderInsert(o) => Some(o.user_id.clone()),
            _ => None,
        };
        let wire = qastore_cluster::convert::records::record_to_pb(&record);
        loop {
            match ingestor.submit(wire.clone()) {
                Ok(done) => {
                    let _ = tx.send((Instant::now(), order_of.clone(), done));
                    break;
                }
                Err(SubmitError::QueueFull) => {
                    queue_full += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(SubmitError::Closed) => return Err("the ingestor stopped".into()),
            }
        }
    }
    drop(tx);
    let stats = ingestor.close().await;
    let elapsed = started.elapsed();
    let (latency, last_index, failed, acks) = collector.await.map_err(|e| e.to_string())?;
    bar.finish_with_message("done");
    if failed > 0 || stats.failed > 0 {
        return Err(format!(
            "{} records were not acknowledged",
            failed.max(stats.failed)
        ));
    }
    Ok(Ingested {
        records: stats.written,
        elapsed,
        latency,
        batches: stats.batches,
        retried: stats.retried,
        queue_full,
        last_index,
        expected,
        acks,
    })
}

async fn read_back(client: &Client, ingest: &Ingested) -> Result<(), String> {
    let (leader, leader_api) = client.find_leader().await.map_err(|e| e.to_string())?;
    let followers: Vec<String> = client
        .endpoints()
        .iter()
        .filter(|e| **e != leader_api)
        .cloned()
        .collect();
    let Some((user, acks)) = ingest.acks.iter().next() else {
        return Err("the workload wrote no orders".into());
    };
    let mut t = Table::new(&[
        "NODE",
        "CONSISTENCY",
        "SERVED AT INDEX",
        "ORDERS",
        "PROMISED",
        "TIME",
    ]);
    // Each read is checked against what its consistency promises: a bounded or local read
    // may rightly miss the latest writes.
    let cases = [
        (pb::Consistency::Linearizable, 0, 0),
        (pb::Consistency::Bounded, 1000, 0),
        (pb::Consistency::Local, 0, 0),
        (pb::Consistency::Local, 0, ingest.last_index),
    ];
    for (i, (consistency, staleness, min_index)) in cases.into_iter().enumerate() {
        let addr = &followers[i % followers.len()];
        let mut store = client.store_at(addr).map_err(|e| e.to_string())?;
        let first_try = Instant::now();
        let (t0, promise, r) = loop {
            let t0 = Instant::now();
            let promise = Promise::of(
                consistency,
                Duration::from_millis(staleness),
                min_index,
                acks,
                t0,
            );
            let answer = store
                .list_orders(client.request(pb::ListOrdersRequest {
                    user_id: user.clone(),
                    only_alive: false,
                    with_history: false,
                    read: Some(pb::ReadOptions {
                        consistency: consistency as i32,
                        max_staleness_ms: staleness,
                        min_applied_index: min_index,
                    }),
                }))
                .await;
            match answer {
                Ok(r) => break (t0, promise, r.into_inner()),
                // A follower still catching up after the burst rightly refuses a bounded read
                // for a moment; it must be able to serve one soon.
                Err(s)
                    if consistency == pb::Consistency::Bounded
                        && s.code() == tonic::Code::Unavailable
                        && first_try.elapsed() < BOUNDED_PATIENCE =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => return Err(format!("reading from {addr}: {}", s.message())),
            }
        };
        let served = r.served_by.unwrap_or_default();
        if !promise.admits(r.orders.len() as u64) {
            return Err(format!(
                "node {} answered {} orders of {user} to a {} read, which promises {promise}",
                served.node_id,
                r.orders.len(),
                consistency.as_str_name()
            ));
        }
        t.row(vec![
            format!("{} (follower)", served.node_id),
            consistency
                .as_str_name()
                .trim_start_matches("CONSISTENCY_")
                .to_lowercase()
                + &if min_index > 0 {
                    format!(", min index {min_index}")
                } else {
                    String::new()
                },
            served.applied_index.to_string(),
            r.orders.len().to_string(),
            promise.to_string(),
            format!("{:.1} ms", t0.elapsed().as_secs_f64() * 1000.0),
        ]);
    }
    outln!("  orders of user {user} (leader is node {leader}):");
    out!("{}", indent(&t.render()));
    Ok(())
}

/// Counts every user's orders and every instrument's ticks, linearizably, against what was
/// acknowledged.
async fn verify_all(client: &Client, expected: &Expected) -> Result<String, String> {
    let read = Some(pb::ReadOptions::default());
    for (user, &n) in &expected.orders {
        let req = pb::ListOrdersRequest {
            user_id: user.clone(),
            only_alive: false,
            with_history: false,
            read,
        };
        let (r, _) = client
            .leader_call(|addr| {
                let req = req.clone();
                async move {
                    let mut s = client.store_at(&addr)?;
                    Ok(s.list_orders(client.request(req)).await?.into_inner())
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        if r.orders.len() as u64 != n {
            return Err(format!(
                "user {user}: {} orders, expected {n}",
                r.orders.len()
            ));
        }
    }
    let mut ticks = 0;
    for (instrument, &n) in &expected.ticks {
        let mut found = 0u64;
        let mut token = bytes::Bytes::new();
        loop {
            let req = pb::ListTicksRequest {
                instrument_id: instrument.clone(),
                range: None,
                limit: 10_000,
                page_token: token.clone(),
                read,
            };
            let (r, _) = client
                .leader_call(|addr| {
                    let req = req.clone();
                    async move {
                        let mut s = client.store_at(&addr)?;
                        Ok(s.list_ticks(client.request(req)).await?.into_inner())
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
            found += r.ticks.len() as u64;
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        if found != n {
            return Err(format!("{instrument}: {found} ticks, expected {n}"));
        }
        ticks += n;
    }
    let orders: u64 = expected.orders.values().sum();
    Ok(format!(
        "all {orders} orders of {} users and all {ticks} ticks of {} instruments are there (linearizable reads)",
        expected.orders.len(),
        expected.ticks.len()
    ))
}

/// Waits until every node answers, then compares state hashes at a fresh hash mark; answers
/// what it found and the mark's index.
async fn compare_replicas(client: &Client) -> Result<(String, u64), String> {
    let (_, leader_api) = client.find_leader().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let index = loop {
        let mut admin = client.admin_at(&leader_api).map_err(|e| e.to_string())?;
        match admin
            .hash_mark(client.request(pb::HashMarkRequest {}))
            .await
        {
            Ok(r) => break r.into_inner().index,
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                return Err(format!("hash mark: {}", e.message()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut hashes = BTreeMap::new();
    for addr in client.endpoints() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let hash = loop {
            let mut admin = client.admin_at(addr).map_err(|e| e.to_string())?;
            let mut req = client.request(pb::StateHashRequest {
                index,
                wait_ms: 5_000,
            });
            req.set_timeout(Duration::from_secs(10));
            match admin.state_hash(req).await {
                Ok(r) => break r.into_inner(),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("state hash from {addr}: {}", e.message()))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        hashes.insert(hash.node_id, hash.hash);
    }
    let distinct: std::collections::BTreeSet<_> = hashes.values().collect();
    if distinct.len() != 1 {
        return Err(format!("the replicas differ at index {index}: {hashes:x?}"));
    }
    let found = format!(
        "nodes {:?} hold identical state at log index {index} (hash {:016x})",
        hashes.keys().collect::<Vec<_>>(),
        hashes.values().next().copied().unwrap_or_default()
    );
    Ok((found, index))
}
