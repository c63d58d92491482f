//! Subscriptions side by side: QAStore's Feed service, etcd watches and NATS JetStream push
//! consumers, three nodes each on loopback, one system at a time under the same fixed write
//! rate. Measures fan-out to 1, 16 and 64 subscribers (events delivered per second and
//! send-to-delivery latency, timed in this process), replay from the oldest retained event, and
//! resume after the subscriber's node is killed. Prints one table and writes it as JSON and
//! Markdown. `benches/feed-vs-peers.sh` installs etcd and nats-server, builds and runs this.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use qastore_benches::fanout::pacer::Rate;
use qastore_benches::fanout::qastore::QaFeed;
use qastore_benches::fanout::report::{Measured, Report};
use qastore_benches::fanout::rows::{fanout, replay, resume_trial};
use qastore_benches::fanout::FeedSystem;
use qastore_benches::versus::host::{find_program, find_qastore, machine, version_of};
use qastore_benches::versus::qastore::QaCluster;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Compare QAStore subscriptions with etcd watches and NATS JetStream consumers.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  benches/feed-vs-peers.sh              # installs etcd and nats-server if missing, builds, runs
  feed_vs_peers --systems qastore --measure-secs 5 --trials 20")]
struct Args {
    /// Systems to run, comma-separated: qastore, etcd, nats.
    #[arg(long, value_delimiter = ',', default_value = "qastore,etcd,nats")]
    systems: Vec<String>,
    /// Subscriber counts of the fan-out rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    subscribers: Vec<usize>,
    /// Records written per second, the same for every system (the default is what every
    /// system carries on a 2-core machine with three nodes and the subscribers on it).
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Records per write batch (etcd: split into transactions of at most 128 puts).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The most write batches in flight.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Seconds of writing before each fan-out row is measured.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Seconds each fan-out row is measured.
    #[arg(long, default_value_t = 10)]
    measure_secs: u64,
    /// Records written per second during the resume trials.
    #[arg(long, default_value_t = 5_000)]
    trial_rate: u64,
    /// Resume trials per system.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Where to write `feed-vs-peers.json` and `.md`.
    #[arg(long, default_value = "target/feed-vs-peers")]
    out: PathBuf,
    /// The `qastore` program (default: beside this one).
    #[arg(long, env = "QASTORE_BIN")]
    qastore_bin: Option<PathBuf>,
}

/// Runs every measurement against `sys`, then shuts it down.
async fn measure<S: FeedSystem>(sys: Arc<S>, args: &Args) -> Measured {
    let name = sys.name();
    let mut m = Measured {
        name: name.to_string(),
        ..Measured::default()
    };
    let rate = Rate {
        records_per_sec: args.rate,
        batch: args.batch,
        in_flight: args.in_flight,
    };
    let mut seq = 0u64;
    let (warmup, window) = (
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.measure_secs.max(1)),
    );
    for &n in &args.subscribers {
        match fanout(&sys, n, rate, warmup, window, &mut seq).await {
            Ok(f) => {
                eprintln!(
                    "  {name:<14} {n:>3} subscribers: written {:>7.0}/s delivered {:>9.0}/s  {}  nodes {:.2} bench {:.2} cores",
                    f.written_per_sec,
                    f.delivered_per_sec,
                    f.latency.summary(),
                    f.cpu.nodes,
                    f.cpu.bench
                );
                if f.write_errors.0 > 0 {
                    eprintln!(
                        "  {name:<14} {} write batches failed, first: {:?}",
                        f.write_errors.0, f.write_errors.1
                    );
                }
                m.fanout.push(f);
            }
            Err(e) => eprintln!("  {name:<14} {n:>3} subscribers failed: {e}"),
        }
    }
    let r = replay(&sys, Duration::from_secs(1)).await;
    match &r {
        Ok(r) => eprintln!(
            "  {name:<14} replay: {} events in {:.2} s, {:.0} events/s",
            r.events,
            r.took.as_secs_f64(),
            r.per_sec()
        ),
        Err(e) => eprintln!("  {name:<14} replay failed: {e}"),
    }
    m.replay = Some(r);
    let trial_rate = Rate {
        records_per_sec: args.trial_rate,
        ..rate
    };
    for trial in 0..args.trials {
        match resume_trial(&sys, trial, trial_rate, &mut seq).await {
            Ok(t) => {
                eprintln!(
                    "  {name:<14} resume trial {}: back after {} ms, {} gaps, {} duplicates",
                    trial + 1,
                    t.resumed.as_millis(),
                    t.gaps,
                    t.duplicates
                );
                m.resume.push(t);
            }
            Err(e) => {
                eprintln!("  {name:<14} resume trial {} failed: {e}", trial + 1);
                m.resume_failures.push(e);
            }
        }
    }
    sys.shutdown();
    m
}

async fn run(args: Args) -> Result<(), String> {
    let mut report = Report {
        subscribers: args.subscribers.clone(),
        ..Report::default()
    };
    report.context.insert("machine".into(), machine());
    report.context.insert(
        "load".into(),
        format!(
            "{} records/s in batches of {} (at most {} in flight), {} s warm-up + {} s measured per fan-out row; resume trials at {} records/s; each record a 5-level tick carrying its send time",
            args.rate, args.batch, args.in_flight, args.warmup_secs, args.measure_secs, args.trial_rate
        ),
    );
    for system in &args.systems {
        let m = match system.as_str() {
            "qastore" => {
                let exe = find_qastore(args.qastore_bin.as_deref())?;
                eprintln!("QAStore: starting three nodes ({})", exe.display());
                report.context.insert("qastore".into(), version_of(&exe));
                let sys = Arc::new(QaFeed::new(QaCluster::start(&exe, true, "", false).await?)?);
                measure(sys, &args).await
            }
            "etcd" => run_etcd(&args, &mut report).await?,
            "nats" => run_nats(&args, &mut report).await?,
            other => {
                return Err(format!(
                    "--systems: unknown system {other:?} (qastore, etcd, nats)"
                ))
            }
        };
        report.systems.push(m);
    }
    let md = report.markdown();
    println!("{md}");
    for (k, v) in &report.context {
        println!("{k}: {v}");
    }
    write_report(&args, &report, &md)
}

fn write_report(args: &Args, report: &Report, md: &str) -> Result<(), String> {
    qastore_benches::report_files::write_report_files(
        &args.out,
        "feed-vs-peers",
        &report.json(),
        md,
        &report.context,
    )
}

#[cfg(feature = "etcd")]
async fn run_etcd(args: &Args, report: &mut Report) -> Result<Measured, String> {
    use qastore_benches::versus::etcd::{find_etcd, EtcdCluster};
    let exe = find_etcd().ok_or("no etcd program (install etcd-server, or set ETCD_BIN)")?;
    eprintln!("etcd: starting three members ({})", exe.display());
    report.context.insert("etcd".into(), version_of(&exe));
    let sys = Arc::new(EtcdCluster::start(&exe, false).await?);
    Ok(measure(sys, args).await)
}

#[cfg(not(feature = "etcd"))]
async fn run_etcd(_: &Args, _: &mut Report) -> Result<Measured, String> {
    Err("built without etcd support: build with --features etcd (needs protoc)".into())
}

#[cfg(feature = "nats")]
async fn run_nats(args: &Args, report: &mut Report) -> Result<Measured, String> {
    use qastore_benches::fanout::nats::NatsCluster;
    let exe = find_program("NATS_SERVER_BIN", "nats-server")
        .ok_or("no nats-server program (install nats-server, or set NATS_SERVER_BIN)")?;
    eprintln!("NATS: starting three JetStream servers ({})", exe.display());
    report.context.insert("nats".into(), version_of(&exe));
    let sys = Arc::new(NatsCluster::start(&exe).await?);
    Ok(measure(sys, args).await)
}

#[cfg(not(feature = "nats"))]
async fn run_nats(_: &Args, _: &mut Report) -> Result<Measured, String> {
    let _ = find_program;
    Err("built without NATS support: build with --features nats".into())
}

fn main() {
    let args = Args::parse();
    // What the subscribers' client does, on RUST_LOG (e.g. `qastore_client=debug`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
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
