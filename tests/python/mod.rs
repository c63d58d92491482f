//! What the tests that run Python share: a project-local virtual environment with the
//! packages `examples/python/requirements.txt` pins (grpcio and grpcio-tools, installed from
//! PyPI the first time), and Python code generated from the `.proto` files with stock
//! grpcio-tools, as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// The venv's python, with the pinned packages installed (creating the venv if needed).
pub fn python() -> PathBuf {
    let requirements = repo().join("examples/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let dir = target_dir().join("grpc-tools-venv");
    let python = dir.join("bin/python");
    // Tests (and test processes) running at once install it once, one after the other.
    std::fs::create_dir_all(target_dir()).unwrap();
    let lock = std::fs::File::create(target_dir().join("grpc-tools-venv.lock")).unwrap();
    lock.lock().unwrap();
    // The installed requirements are remembered: a change of pins reinstalls.
    let ready = dir.join(".installed-requirements");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3 is needed to create the test's virtual environment");
        assert!(status.success(), "python3 -m venv failed");
        let out = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .output()
            .expect("pip runs");
        assert!(
            out.status.success(),
            "installing {} from PyPI failed:\n{}",
            wanted.trim().replace('\n', ", "),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, &wanted).unwrap();
    }
    python
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
