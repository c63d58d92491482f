//! QAStore and etcd side by side: three nodes each on loopback, one system at a time, the same
//! load generator, keys and values; writes, batched writes, follower reads, kill-leader and
//! planned-transfer trials. Prints one table with the ratio per row and writes it as JSON and
//! Markdown. `benches/cluster-vs-etcd.sh` installs etcd, builds and runs this.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use qastore_benches::versus::drill::{kill_leader, transfer_leader};
use qastore_benches::versus::host::{find_qastore, machine, version_of};
use qastore_benches::versus::qastore::QaCluster;
use qastore_benches::versus::report::{LoadFigures, Report, Row, Spread};
use qastore_benches::versus::rows::{run_row, RowKind};
use qastore_benches::versus::{wait_healthy, System};
use qastore_testkit::load::Window;
use qastore_testkit::processes_cpu_secs;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Compare a QAStore cluster with an etcd cluster under the same load.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  benches/cluster-vs-etcd.sh            # installs etcd if missing, builds, runs everything
  cluster_vs_etcd --systems qastore --clients 16 --measure-secs 5 --trials 3
  cluster_vs_etcd --tls --rows put,read-linearizable --trials 0   # what TLS costs")]
struct Args {
    /// Systems to run, comma-separated: qastore, etcd.
    #[arg(long, value_delimiter = ',', default_value = "qastore,etcd")]
    systems: Vec<String>,
    /// Client counts of the load rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// Load rows to run, comma-separated: put, put-exchange, batched, read-linearizable,
    /// read-local (the batched row runs at the largest client count only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "put,put-exchange,batched,read-linearizable,read-local"
    )]
    rows: Vec<String>,
    /// Seconds of warm-up before each load row (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Seconds each load row is measured.
    #[arg(long, default_value_t = 10)]
    measure_secs: u64,
    /// Trials of each failover measurement.
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// Where to write `cluster-vs-etcd.json` and `.md`.
    #[arg(long, default_value = "target/cluster-vs-etcd")]
    out: PathBuf,
    /// QAStore's client sends each write as a unary call instead of on its write stream.
    #[arg(long)]
    unary_writes: bool,
    /// A line of TOML added to every QAStore node's config (repeatable), for example
    /// `--node-setting 'write_groups_in_flight = 2'`.
    #[arg(long = "node-setting", value_name = "TOML")]
    node_settings: Vec<String>,
    /// Both systems run mutual TLS on every port (certificates made for the run; etcd with
    /// `--client-cert-auth` and `--peer-client-cert-auth`).
    #[arg(long)]
    tls: bool,
    /// The `qastore` program (default: beside this one, else `$QASTORE_BIN`).
    #[arg(long, env = "QASTORE_BIN")]
    qastore_bin: Option<PathBuf>,
}

/// The load rows of the kinds `kinds`, in the order they run.
fn load_rows(kinds: &[RowKind], clients: &[usize]) -> Vec<(RowKind, usize)> {
    let most = clients.iter().copied().max().unwrap_or(64);
    RowKind::ALL
        .iter()
        .map(|(_, kind)| *kind)
        .filter(|kind| kinds.contains(kind))
        .flat_map(|kind| match kind {
            RowKind::Batched => vec![(kind, most)],
            _ => clients.iter().map(|c| (kind, *c)).collect(),
        })
        .collect()
}

/// The kinds `--rows` names.
fn row_kinds(names: &[String]) -> Result<Vec<RowKind>, String> {
    names
        .iter()
        .map(|n| {
            RowKind::by_name(n).ok_or_else(|| {
                let known: Vec<&str> = RowKind::ALL.iter().map(|(n, _)| *n).collect();
                format!("--rows: unknown row {n:?} ({})", known.join(", "))
            })
        })
        .collect()
}

const KILL: &str = "kill leader: write unavailable";
const KILL_LEADER: &str = "kill leader: time to a new leader";
const TRANSFER: &str = "planned transfer: longest write gap";

/// Everything measured of one system, by row.
#[derive(Default)]
struct Measured {
    load: BTreeMap<(String, usize), LoadFigures>,
    failover: BTreeMap<&'static str, (Vec<Duration>, Vec<String>)>,
}

async fn measure<S: System>(sys: Arc<S>, args: &Args) -> Result<Measured, String> {
    let window = Window {
        warmup: Duration::from_secs(args.warmup_secs),
        measure: Duration::from_secs(args.measure_secs.max(1)),
    };
    let mut m = Measured::default();
    for (kind, clients) in load_rows(&row_kinds(&args.rows)?, &args.clients) {
        wait_healthy(sys.as_ref(), Duration::from_secs(30)).await?;
        sys.leader().await;
        // The nodes' own CPU counters from the end of the warm-up to the end of the row (which
        // waits for the operations in flight: a few milliseconds past the measured window).
        // The write stages the same way.
        let pids = sys.pids();
        let warmed = {
            let (pids, sys) = (pids.clone(), sys.clone());
            tokio::spawn(async move {
                tokio::time::sleep(window.warmup).await;
                (processes_cpu_secs(&pids), sys.write_stages().await)
            })
        };
        let r = run_row(&sys, kind, clients, window).await?;
        let node_secs_now = processes_cpu_secs(&pids);
        let stages_now = sys.write_stages().await;
        let (node_secs_then, stages_then) = warmed.await.map_err(|e| e.to_string())?;
        let stages = match (kind, stages_then, stages_now) {
            (RowKind::Put(_) | RowKind::Batched, Some(then), Some(now)) => {
                now.since(&then).summaries()
            }
            _ => Vec::new(),
        };
        let f = LoadFigures::of(&r, kind.counts_records())
            .with_node_cpu(node_secs_now - node_secs_then, &r, kind.counts_records())
            .with_write_stages(stages);
        eprintln!(
            "  {:<8} {:<50} {:>3} clients: {:>9.0} {}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}  cpu {:.0}% steal {:.0}%  nodes {:.1} us/{}",
            sys.name(),
            kind.label(),
            clients,
            f.per_sec,
            if kind.counts_records() { "records" } else { "ops" },
            f.latency_ms[0],
            f.latency_ms[1],
            f.errors,
            f.cpu.0 * 100.0,
            f.cpu.1 * 100.0,
            f.node_cpu_us.unwrap_or(0.0),
            if kind.counts_records() { "record" } else { "op" },
        );
        m.load.insert((kind.label().to_string(), clients), f);
    }
    for trial in 0..args.trials {
        match kill_leader(&sys).await {
            Ok(t) => {
                eprintln!(
                    "  {:<8} kill-leader trial {}: new leader {} ms, writes back {} ms",
                    sys.name(),
                    trial + 1,
                    t.new_leader.as_millis(),
                    t.unavailable.as_millis()
                );
                m.failover.entry(KILL).or_default().0.push(t.unavailable);
                m.failover
                    .entry(KILL_LEADER)
                    .or_default()
                    .0
                    .push(t.new_leader);
            }
            Err(e) => {
                eprintln!(
                    "  {:<8} kill-leader trial {} failed: {e}",
                    sys.name(),
                    trial + 1
                );
                m.failover.entry(KILL).or_default().1.push(e);
            }
        }
    }
    for trial in 0..args.trials {
        match transfer_leader(&sys).await {
            Ok(t) => {
                eprintln!(
                    "  {:<8} transfer trial {}: longest write gap {} ms (call took {} ms)",
                    sys.name(),
                    trial + 1,
                    t.gap.as_millis(),
                    t.took.as_millis()
                );
                m.failover.entry(TRANSFER).or_default().0.push(t.gap);
            }
            Err(e) => {
                eprintln!(
                    "  {:<8} transfer trial {} failed: {e}",
                    sys.name(),
                    trial + 1
                );
                m.failover.entry(TRANSFER).or_default().1.push(e);
            }
        }
    }
    Ok(m)
}

async fn run(args: Args) -> Result<(), String> {
    row_kinds(&args.rows)?;
    let mut results: BTreeMap<&'static str, Measured> = BTreeMap::new();
    let mut report = Report::default();
    report.context.insert("machine".into(), machine());
    report.context.insert(
        "load".into(),
        format!(
            "closed loop, one request in flight per client; {} s warm-up + {} s measured per row; {} trials per failover row; 16 B keys over 100,000 keys, 128 B values",
            args.warmup_secs, args.measure_secs, args.trials
        ),
    );
    for system in &args.systems {
        match system.as_str() {
            "qastore" => {
                let exe = find_qastore(args.qastore_bin.as_deref())?;
                eprintln!("QAStore: starting three nodes ({})", exe.display());
                report.context.insert("qastore".into(), version_of(&exe));
                if args.tls {
                    report.context.insert(
                        "qastore transport".into(),
                        "mutual TLS (rustls, ring)".into(),
                    );
                }
                let sys = Arc::new(
                    QaCluster::start(
                        &exe,
                        !args.unary_writes,
                        &args.node_settings.join("\n"),
                        args.tls,
                    )
                    .await?,
                );
                let m = measure(sys.clone(), &args).await;
                sys.shutdown();
                results.insert("QAStore", m?);
            }
            "etcd" => run_etcd(&args, &mut report, &mut results).await?,
            other => {
                return Err(format!(
                    "--systems: unknown system {other:?} (qastore, etcd)"
                ))
            }
        }
    }
    for (kind, clients) in load_rows(&row_kinds(&args.rows)?, &args.clients) {
        let label = kind.label().to_string();
        let systems = results
            .iter()
            .filter_map(|(name, m)| {
                m.load
                    .get(&(label.clone(), clients))
                    .map(|f| (name.to_string(), f.clone()))
            })
            .collect();
        report.rows.push(Row::Load {
            label,
            clients,
            unit: if kind.counts_records() {
                "records/s"
            } else {
                "ops/s"
            },
            systems,
        });
    }
    for label in [KILL, KILL_LEADER, TRANSFER] {
        let mut systems = BTreeMap::new();
        let mut failures = BTreeMap::new();
        for (name, m) in &results {
            let (values, failed) = m.failover.get(label).cloned().unwrap_or_default();
            systems.insert(name.to_string(), Spread::of(&values));
            failures.insert(name.to_string(), failed);
        }
        report.rows.push(Row::Failover {
            label: label.into(),
            systems,
            failures,
        });
    }
    let md = report.markdown();
    println!("{md}");
    for (k, v) in &report.context {
        println!("{k}: {v}");
    }
    qastore_benches::report_files::write_report_files(
        &args.out,
        "cluster-vs-etcd",
        &report.json(),
        &md,
        &report.context,
    )
}

#[cfg(feature = "etcd")]
async fn run_etcd(
    args: &Args,
    report: &mut Report,
    results: &mut BTreeMap<&'static str, Measured>,
) -> Result<(), String> {
    use qastore_benches::versus::etcd::{find_etcd, EtcdCluster};
    let exe = find_etcd().ok_or("no etcd program (install etcd-server, or set ETCD_BIN)")?;
    eprintln!("etcd: starting three members ({})", exe.display());
    report.context.insert("etcd".into(), version_of(&exe));
    if args.tls {
        report
            .context
            .insert("etcd transport".into(), "mutual TLS (Go crypto/tls)".into());
    }
    let sys = Arc::new(EtcdCluster::start(&exe, args.tls).await?);
    let m = measure(sys.clone(), args).await;
    sys.shutdown();
    results.insert("etcd", m?);
    Ok(())
}

#[cfg(not(feature = "etcd"))]
async fn run_etcd(
    _: &Args,
    _: &mut Report,
    _: &mut BTreeMap<&'static str, Measured>,
) -> Result<(), String> {
    Err("built without etcd support: build with --features etcd (needs protoc)".into())
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
