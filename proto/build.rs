//! Generates the gRPC code from `qastore/v1/*.proto` with a pure-Rust protobuf compiler
//! (protox), so building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let files = ["qastore/v1/raft_peer.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Entry batches and snapshot chunks are passed on without copying.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
