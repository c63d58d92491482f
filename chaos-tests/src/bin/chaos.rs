//! `qastore-chaos`: one chaos run against a local cluster of `qastore serve` processes.
//! Exit 0: valid; 1: invalid; 2: inconclusive. The seed is always printed; pass it back with
//! `--seed` to replay the same choices.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use qastore_chaos::nemesis::Nemesis;
use qastore_chaos::run::{run, RunConfig};

/// One chaos run.
#[derive(Debug, Parser)]
#[command(
    name = "qastore-chaos",
    after_help = "Examples:
  qastore-chaos --duration-secs 60
  qastore-chaos --duration-secs 1800 --nemesis kill-leader,pause-leader,partition,one-way,kill,slow --nodes 5
  qastore-chaos --seed 1234   # replay"
)]
struct Args {
    /// How long faults are injected, in seconds.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Faults to draw from: kill-leader, kill, pause-leader, pause, partition,
    /// partition-random, one-way, slow, transfer-leader, torn-write, replace.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill-leader,pause-leader,partition,kill,pause,one-way"
    )]
    nemesis: Vec<String>,
    /// Nodes (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Registers.
    #[arg(long, default_value_t = 100)]
    keys: u32,
    /// Where to keep the cluster's files and the report (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds each fault is held (a new leader takes about 3 s with the default election
    /// timeouts).
    #[arg(long, default_value_t = 6)]
    hold_secs: u64,
    /// Run the cluster and the clients on mutual TLS.
    #[arg(long)]
    tls: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut nemeses = Vec::new();
    for n in &args.nemesis {
        match Nemesis::parse(n) {
            Some(x) => nemeses.push(x),
            None => {
                eprintln!("error: unknown nemesis {n:?}");
                return ExitCode::from(2);
            }
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let dir = args
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("qastore-chaos-{seed}")));
    println!("seed {seed}; files in {}", dir.display());
    let settings = RunConfig {
        nodes: args.nodes,
        fault_phase: Duration::from_secs(args.duration_secs),
        quiet: Duration::from_secs(5),
        hold: Duration::from_secs(args.hold_secs),
        nemeses,
        seed,
        clients: args.clients,
        keys: args.keys,
        dir: dir.clone(),
        min_ok_per_phase: 20,
        node_env: Vec::new(),
        tls: args.tls,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(run(settings));
    print!("{}", report.summary());
    match report.write(&dir) {
        Ok(()) => println!(
            "report: {} (history: {})",
            dir.join("report.json").display(),
            dir.join("history.jsonl").display()
        ),
        Err(e) => eprintln!("error: writing the report into {}: {e}", dir.display()),
    }
    ExitCode::from(report.verdict.exit_code())
}
