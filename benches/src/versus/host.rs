//! Where a comparison ran: the machine, the programs' versions, and the `qastore` program to
//! start.

use std::path::{Path, PathBuf};

/// The first line `cmd arg` prints, or "unknown".
pub fn first_line(cmd: &str, arg: &str) -> String {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The version line of the program at `exe`.
pub fn version_of(exe: &Path) -> String {
    first_line(&exe.to_string_lossy(), "--version")
}

/// Cores, CPU model, memory and kernel of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{} GiB", kb / (1 << 20)));
    format!(
        "{cores} cores ({cpu}), {mem} RAM, {}",
        first_line("uname", "-sr")
    )
}

/// The `qastore` program: `given`, else the one beside this program.
pub fn find_qastore(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let beside = exe.with_file_name("qastore");
    if beside.is_file() {
        return Ok(beside);
    }
    Err(format!(
        "no qastore program beside {} (build it: cargo build --release -p qastore, or set QASTORE_BIN)",
        exe.display()
    ))
}

/// A program on the `PATH` (or in `/usr/sbin`, where Debian puts some servers), unless the
/// environment variable `var` names one.
pub fn find_program(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
