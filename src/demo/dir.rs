//! The demo's directory: refusing one that running nodes use, wiping an earlier demo's only
//! when asked (`--fresh`), and stopping exactly the nodes a kept demo left running.

use std::path::Path;
use std::time::Duration;

use qastore_testkit::{locks, pids};

/// Marks a directory as the demo's own, so that `--fresh` may wipe it.
const MARKER: &str = ".qastore-demo";

/// How long `--stop` waits for the nodes to shut down before killing them.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Why `dir` must not be touched now: nodes recorded there still run, or a process holds one
/// of its lock files. `None` if nothing uses it.
pub fn in_use(dir: &Path) -> Option<String> {
    let running: Vec<String> = pids::recorded(dir)
        .into_iter()
        .filter(|r| r.running)
        .map(|r| format!("node {} pid {}", r.id, r.pid))
        .collect();
    if !running.is_empty() {
        return Some(format!(
            "{} is in use by a running demo cluster ({}); stop it with `qastore demo --stop --dir {}` or choose another --dir",
            dir.display(),
            list(&running),
            dir.display()
        ));
    }
    let held = locks::held_locks(dir);
    if let Some(first) = held.first() {
        let mut pids: Vec<u32> = held.iter().flat_map(|h| h.pids.iter().copied()).collect();
        pids.sort_unstable();
        pids.dedup();
        let by = if pids.is_empty() {
            "another process".to_string()
        } else {
            let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
            format!("pid {}", list(&pids))
        };
        return Some(format!(
            "{} is in use: {} is locked by {by}; stop that process or choose another --dir",
            dir.display(),
            first.path.display()
        ));
    }
    None
}

/// Makes `dir` ready for a new demo cluster. A missing or empty directory is created and
/// marked; one from an earlier run is wiped only with `fresh` and only if it is a demo's; a
/// directory in use is never touched.
pub fn prepare(dir: &Path, fresh: bool) -> Result<(), String> {
    if dir.exists() {
        if let Some(why) = in_use(dir) {
            return Err(why);
        }
        let empty = std::fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                return Err(format!(
                    "{} exists and is not a demo directory; choose another with --dir",
                    dir.display()
                ));
            }
            if !fresh {
                return Err(format!(
                    "{} holds an earlier demo's cluster; pass --fresh to wipe it, or choose another --dir",
                    dir.display()
                ));
            }
            std::fs::remove_dir_all(dir).map_err(|e| format!("wiping {}: {e}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(dir.join(MARKER), b"qastore demo\n")
        .map_err(|e| format!("writing {}: {e}", dir.join(MARKER).display()))
}

/// `qastore demo --stop`: stops the nodes a kept demo in `dir` left running, and only those.
pub fn stop(dir: &Path) -> Result<String, String> {
    if !dir.join(MARKER).exists() {
        return Err(format!("{} is not a demo directory", dir.display()));
    }
    // The nodes were recorded under the directory's absolute path.
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("resolving {}: {e}", dir.display()))?;
    let done = pids::stop_recorded(&dir, STOP_GRACE);
    let mut lines = Vec::new();
    for (id, pid) in &done.terminated {
        lines.push(format!("stopped node {id} (pid {pid})"));
    }
    for (id, pid) in &done.killed {
        lines.push(format!(
            "killed node {id} (pid {pid}): still running after {} s",
            STOP_GRACE.as_secs()
        ));
    }
    for (id, pid) in &done.stale {
        lines.push(format!(
            "node {id} (pid {pid}) was no longer running; nothing sent to that pid"
        ));
    }
    if lines.is_empty() {
        lines.push(format!("no demo node of {} is running", dir.display()));
    }
    Ok(lines.join("\n"))
}
