//! A project-local Python virtual environment for tests: created under the build's target
//! directory the first time, with pinned packages installed from PyPI, and installed again
//! when the pins change. The root tests (`tests/python/mod.rs`) and the exchange crate's
//! pyarrow test share this file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target directory of the build: `CARGO_TARGET_DIR`, else `target` in `workspace`.
pub fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

/// The python of the virtual environment `name` in the target directory of `workspace`, with
/// `requirements` (a requirements file's text: one pin per line) installed. Tests and test
/// processes running at once install it once, one after the other.
pub fn python_with(workspace: &Path, name: &str, requirements: &str) -> PathBuf {
    let target = target_dir(workspace);
    let dir = target.join(name);
    let python = dir.join("bin/python");
    std::fs::create_dir_all(&target).unwrap();
    let lock = std::fs::File::create(target.join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    // The installed requirements are remembered: a change of pins reinstalls.
    let ready = dir.join(".installed-requirements");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(requirements) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3 is needed to create the test's virtual environment");
        assert!(status.success(), "python3 -m venv failed");
        let pins = dir.join("requirements.txt");
        std::fs::write(&pins, requirements).unwrap();
        let out = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&pins)
            .output()
            .expect("pip runs");
        assert!(
            out.status.success(),
            "installing {} from PyPI failed:\n{}",
            requirements.trim().replace('\n', ", "),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, requirements).unwrap();
    }
    python
}
