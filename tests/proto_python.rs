//! Users generate clients from our `.proto` files with stock tools. This test compiles every
//! file under `proto/` with grpcio-tools (the protoc most Python users have), imports each
//! generated message and service module, and checks that no message field is a Python
//! keyword (such a field cannot be set as a keyword argument or read as an attribute).
//!
//! grpcio-tools is installed from PyPI into a project-local virtual environment
//! (`target/grpc-tools-venv`, see `tests/python/mod.rs`) the first time the test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod python;

use std::process::Command;

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
    let files = python::proto_files();
    assert!(files.len() >= 4, "found {files:?}");
    let py = python::python();
    let out = tempfile::tempdir().unwrap();
    for file in &files {
        // One file at a time, as a user generating one service's client would.
        python::generate(&py, std::slice::from_ref(file), out.path());
    }
    let modules: Vec<String> = files
        .iter()
        .map(|f| f.trim_end_matches(".proto").replace('/', "."))
        .collect();
    let r = Command::new(&py)
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
