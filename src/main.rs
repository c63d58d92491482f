//! `qastore`: run a node, run the local demo cluster, operate a cluster, or load it.

mod bench;
mod certs;
mod client_tls;
mod ctl;
mod demo;
mod logging;
mod output;
mod parquet_path;
mod record_feed;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

// A storage server allocates and frees many small objects across threads; mimalloc handles
// that better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// QAStore: replicated storage and distribution for a futures exchange.
#[derive(Debug, Parser)]
#[command(
    name = "qastore",
    version,
    about,
    long_about = None,
    after_help = "Examples:
  qastore demo --keep                          a local three-node cluster with market data
  qastore ctl status                           every member's role, log and lag
  qastore ctl orders --user u0001 -o json      a user's orders, as JSON
  qastore ctl bars --instrument cu2501 --from 2024-12-02 --limit 10
  qastore serve --config node1.toml --init     one node of a real cluster
  qastore bench --duration-secs 10             load the cluster, report throughput
  qastore certs init --cluster-id prod         a CA for the cluster's certificates
  qastore completions bash > /etc/bash_completion.d/qastore"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node of a cluster.
    Serve(serve::ServeArgs),
    /// Start a local three-node cluster, stream an exchange workload into it, read it back
    /// from followers, kill the leader, and show that nothing acknowledged was lost.
    Demo(demo::DemoArgs),
    /// Operate a cluster: status, members, queries, leadership, backups, drills.
    Ctl(ctl::CtlArgs),
    /// Load a cluster with concurrent writers and follower readers and report throughput
    /// and latency.
    Bench(bench::BenchArgs),
    /// Print the directory holding a node's Parquet files now (it moves when the node installs
    /// a snapshot, so scripts should ask each time).
    ParquetPath(parquet_path::ParquetPathArgs),
    /// Make the cluster's CA and issue node and client certificates (mutual TLS, roles).
    Certs(certs::CertsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    #[command(
        after_help = "Examples:\n  qastore completions bash > ~/.local/share/bash-completion/completions/qastore\n  qastore completions zsh > \"${fpath[1]}/_qastore\""
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "qastore", &mut script);
            output::emit(&String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::ParquetPath(args) => parquet_path::run(&args),
        Command::Certs(args) => certs::run(args),
        Command::Serve(args) => {
            logging::init(logging::SERVE_FILTER, args.log_format());
            rt.block_on(serve::run(args))
        }
        Command::Demo(args) => {
            logging::init(logging::CLIENT_FILTER, logging::LogFormat::Text);
            rt.block_on(demo::run(args))
        }
        Command::Ctl(args) => {
            logging::init(logging::CLIENT_FILTER, logging::LogFormat::Text);
            return rt.block_on(ctl::run(args));
        }
        Command::Bench(args) => {
            logging::init(logging::CLIENT_FILTER, logging::LogFormat::Text);
            rt.block_on(bench::run(args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
