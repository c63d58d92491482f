//! The pid files of a local cluster's nodes (`node<ID>.pid` beside their configs): recorded at
//! each start, so that a later program can tell which of those processes still run as those
//! nodes and stop exactly them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::signal::{self, Signal};
use crate::KitError;

/// The pid file of node `id` in the cluster directory `dir`.
pub fn pid_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.pid"))
}

/// The config file of node `id` in the cluster directory `dir`.
pub fn config_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.toml"))
}

/// Records that node `id` of the cluster in `dir` runs as process `pid`.
pub fn record(dir: &Path, id: u64, pid: u32) -> Result<(), KitError> {
    let path = pid_file(dir, id);
    std::fs::write(&path, format!("{pid}\n")).map_err(|e| KitError::at("writing", &path, e))
}

/// Forgets node `id`'s pid (it was stopped).
pub fn forget(dir: &Path, id: u64) {
    let _ = std::fs::remove_file(pid_file(dir, id));
}

/// A node whose pid is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The node id.
    pub id: u64,
    /// The pid recorded for it.
    pub pid: u32,
    /// Whether that pid is still a `qastore serve` of this node's config (not exited, not
    /// reused by another program).
    pub running: bool,
}

/// Every node with a pid file in `dir`, by id.
pub fn recorded(dir: &Path) -> Vec<Recorded> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Recorded> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id: u64 = name
                .strip_prefix("node")?
                .strip_suffix(".pid")?
                .parse()
                .ok()?;
            let pid: u32 = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some(Recorded {
                id,
                pid,
                running: is_node_process(pid, &config_file(dir, id)),
            })
        })
        .collect();
    out.sort_by_key(|r| r.id);
    out
}

/// Whether process `pid` is alive (not a zombie) and runs `serve` with the config `config`.
pub fn is_node_process(pid: u32, config: &Path) -> bool {
    if !alive(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let config = config.as_os_str().as_encoded_bytes();
    args.iter().any(|a| *a == b"serve")
        && args
            .windows(2)
            .any(|w| w[0] == b"--config" && w[1] == config)
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// What [`stop_recorded`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Nodes stopped by SIGTERM: (id, pid).
    pub terminated: Vec<(u64, u32)>,
    /// Nodes that outlived the grace period and were killed: (id, pid).
    pub killed: Vec<(u64, u32)>,
    /// Pid files whose process no longer runs as that node (left alone): (id, pid).
    pub stale: Vec<(u64, u32)>,
}

/// Stops exactly the nodes recorded in `dir` that still run as those nodes: SIGTERM, then
/// SIGKILL for those still running after `grace`. A pid that is no longer the node's (it
/// exited, or the number was reused) is never signalled. Their pid files are removed.
pub fn stop_recorded(dir: &Path, grace: Duration) -> Stopped {
    let mut out = Stopped::default();
    let mut waiting = Vec::new();
    for r in recorded(dir) {
        if r.running {
            // The pid was just checked to be the node's.
            let _ = signal::kill(r.pid, Signal::Term);
            waiting.push((r.id, r.pid));
        } else {
            out.stale.push((r.id, r.pid));
            forget(dir, r.id);
        }
    }
    let deadline = Instant::now() + grace;
    while !waiting.is_empty() {
        waiting.retain(|&(id, pid)| {
            let still = is_node_process(pid, &config_file(dir, id));
            if !still {
                out.terminated.push((id, pid));
                forget(dir, id);
            }
            still
        });
        if Instant::now() >= deadline {
            for &(id, pid) in &waiting {
                if is_node_process(pid, &config_file(dir, id)) {
                    let _ = signal::kill(pid, Signal::Kill);
                }
                out.killed.push((id, pid));
                forget(dir, id);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_serve_of_the_recorded_config_counts_as_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        record(dir.path(), 1, other.id()).unwrap();
        record(dir.path(), 2, u32::MAX - 1).unwrap();
        let r = recorded(dir.path());
        assert_eq!(r.len(), 2);
        assert!(!r[0].running && !r[1].running, "{r:?}");
        let stopped = stop_recorded(dir.path(), Duration::from_millis(100));
        assert_eq!(stopped.stale, vec![(1, other.id()), (2, u32::MAX - 1)]);
        assert!(stopped.terminated.is_empty() && stopped.killed.is_empty());
        // The unrelated process was not signalled.
        assert!(other.try_wait().unwrap().is_none());
        assert!(recorded(dir.path()).is_empty());
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
