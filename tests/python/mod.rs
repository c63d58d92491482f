//! What the tests that run Python share: a project-local virtual environment with the
//! packages `examples/python/requirements.txt` pins (grpcio and grpcio-tools, installed from
//! PyPI the first time), and Python code generated from the `.proto` files with stock
//! grpcio-tools, as a user would.

mod venv;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, with the packages `examples/python/requirements.txt` pins installed
/// (creating the venv if needed).
pub fn python() -> PathBuf {
    let requirements = repo().join("examples/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    venv::python_with(repo(), "grpc-tools-venv", &wanted)
}

/// The folder the `.proto` files are imported from (`-I`).
pub fn proto_root() -> PathBuf {
    repo().join("proto")
}

/// Every `.proto` file under [`proto_root`], relative to it, sorted.
pub fn proto_files() -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = proto_root();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

/// Generates the messages and gRPC stubs of `files` into `out` with `python -m
/// grpc_tools.protoc`, failing with protoc's complaint.
pub fn generate(python: &Path, files: &[String], out: &Path) {
    let r = Command::new(python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(proto_root())
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .args(files)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "protoc failed on {files:?}:\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
}
