//! Users generate clients from our `.proto` files with stock tools. This test compiles every
//! file under `proto/` with grpcio-tools (the protoc most Python users have), imports each
//! generated message and service module, and checks that no message field is a Python
//! keyword (such a field cannot be set as a keyword argument or read as an attribute).
//!
//! grpcio-tools is installed from PyPI into a project-local virtual environment
//! (`target/grpc-tools-venv`) the first time the test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const GRPCIO_TOOLS: &str = "grpcio-tools==1.85.1";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The venv's python with grpcio-tools installed, creating it if needed.
fn python() -> PathBuf {
    let dir = target_dir().join("grpc-tools-venv");
    let python = dir.join("bin/python");
    let ready = dir.join(".grpc-tools-installed");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(GRPCIO_TOOLS) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3 is needed to create the test's virtual environment");
        assert!(status.success(), "python3 -m venv failed");
        let out = Command::new(dir.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                GRPCIO_TOOLS,
            ])
            .output()
            .expect("pip runs");
        assert!(
            out.status.success(),
            "installing {GRPCIO_TOOLS} from PyPI failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, GRPCIO_TOOLS).unwrap();
    }
    python
}

/// Every `.proto` file under `dir`, relative to `root`.
fn protos(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            protos(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

const CHECK: &str = r#"
import importlib, keyword, sys
modules = sys.argv[1:]
problems = []
services = 0
for name in modules:
    pb2 = importlib.import_module(name + "_pb2")
    grpc_mod = importlib.import_module(name + "_pb2_grpc")
    def walk(msg):
        for f in msg.fields:
            if keyword.iskeyword(f.name):
                problems.append(f"{msg.full_name}.{f.name} is a Python keyword")
        for nested in msg.nested_types:
            walk(nested)
    for msg in pb2.DESCRIPTOR.message_types_by_name.values():
        walk(msg)
    for svc in pb2.DESCRIPTOR.services_by_name.values():
        services += 1
        assert hasattr(grpc_mod, svc.name + "Stub"), svc.name
# The renamed range reads naturally from Python.
store = importlib.import_module("qastore.v1.store_pb2")
r = store.TimeRange(from_ns=1, to_ns=2)
assert (r.from_ns, r.to_ns) == (1, 2)
bars = store.GetBarsRequest(instrument_id="cu2501", limit=10, page_token=b"x")
assert bars.limit == 10
assert not problems, problems
print(len(modules), "modules,", services, "services")
"#;

#[test]
fn every_proto_file_compiles_with_grpcio_tools_and_imports_in_python() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let mut files = Vec::new();
    protos(&root, &root, &mut files);
    files.sort();
    assert!(files.len() >= 4, "found {files:?}");
    let python = python();
    let out = tempfile::tempdir().unwrap();
    for file in &files {
        // One file at a time, as a user generating one service's client would.
        let r = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&root)
            .arg(format!("--python_out={}", out.path().display()))
            .arg(format!("--grpc_python_out={}", out.path().display()))
            .arg(file)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "protoc failed on {file}:\n{}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let modules: Vec<String> = files
        .iter()
        .map(|f| f.trim_end_matches(".proto").replace('/', "."))
        .collect();
    let r = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .args(&modules)
        .env("PYTHONPATH", out.path())
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "the generated modules do not import cleanly:\n{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}
