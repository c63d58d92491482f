//! `qastore`: the command-line entry point.

use clap::Parser;

// A storage server allocates and frees many small objects across threads; mimalloc handles
// that better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// QAStore: replicated storage and distribution for a futures exchange.
#[derive(Debug, Parser)]
#[command(name = "qastore", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "qastore {}: the storage engine is available as the qastore-storage library",
        env!("CARGO_PKG_VERSION")
    );
}
