//! `qastore`: the command-line entry point.

use clap::Parser;

/// QAStore: replicated storage and distribution for a futures exchange.
#[derive(Debug, Parser)]
#[command(name = "qastore", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "qastore {}: the storage engine is available as the qastore-storage library; \
         run `qastore --help` for commands",
        env!("CARGO_PKG_VERSION")
    );
}
