//! A cluster of `qastore serve` child processes on 127.0.0.1, each with its own config file,
//! data directory and log file under one directory: what `qastore demo` and the cluster
//! benchmark run. Each node's pid is recorded beside its config (see [`pids`]).

pub mod locks;
pub mod pids;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node of the local cluster.
#[derive(Debug)]
pub struct LocalNode {
    /// Its node id.
    pub id: u64,
    /// Its client API address.
    pub api: SocketAddr,
    /// Its peer address.
    pub raft: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    /// Its nodes.
    pub nodes: Vec<LocalNode>,
    exe: PathBuf,
    dir: PathBuf,
    default_ports: bool,
}

/// `count` addresses on 127.0.0.1: from `base` on if all are free (true), otherwise any free
/// ones (false).
fn addresses(base: u16, count: usize) -> Result<(Vec<SocketAddr>, bool), String> {
    let fixed: Vec<SocketAddr> = (0..count as u16)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], base + i)))
        .collect();
    if fixed.iter().all(|a| TcpListener::bind(a).is_ok()) {
        return Ok((fixed, true));
    }
    Ok((free_addresses(count)?, false))
}

/// `count` distinct free addresses on 127.0.0.1, chosen by the system.
pub fn free_addresses(count: usize) -> Result<Vec<SocketAddr>, String> {
    // Hold every listener until all are chosen, so no port is picked twice.
    let held: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("finding free ports: {e}"))?;
    held.iter()
        .map(|l| l.local_addr().map_err(|e| e.to_string()))
        .collect()
}

/// Starts `cmd` with no input and its output appended to the file `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", cmd.get_program().to_string_lossy()))
}

impl LocalCluster {
    /// Writes the configs of a `size`-node cluster under `dir` (API ports from 7001, peer
    /// ports from 7101, HTTP ports from 7201 when free), to be run by the `qastore` program at
    /// `exe`.
    pub fn prepare(
        exe: &Path,
        dir: &Path,
        size: usize,
        cluster_id: &str,
    ) -> Result<LocalCluster, String> {
        let exe = exe.to_path_buf();
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Absolute paths, so that the recorded processes can be recognised from anywhere.
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("resolving {}: {e}", dir.display()))?;
        let (api, api_default) = addresses(7001, size)?;
        let (raft, raft_default) = addresses(7101, size)?;
        let (http, http_default) = addresses(7201, size)?;
        let members: String = (0..size)
            .map(|i| {
                format!(
                    "[[initial_members]]\nid = {}\nraft = \"{}\"\napi = \"{}\"\n\n",
                    i + 1,
                    raft[i],
                    api[i]
                )
            })
            .collect();
        let mut nodes = Vec::new();
        for i in 0..size {
            let id = i as u64 + 1;
            let config = pids::config_file(&dir, id);
            let text = format!(
                "cluster_id = \"{cluster_id}\"\nnode_id = {id}\ndata_dir = \"{}\"\n\
                 api_listen = \"{}\"\nraft_listen = \"{}\"\nhttp_listen = \"{}\"\n\n{members}",
                dir.join(format!("node{id}")).display(),
                api[i],
                raft[i],
                http[i],
            );
            std::fs::write(&config, text)
                .map_err(|e| format!("writing {}: {e}", config.display()))?;
            nodes.push(LocalNode {
                id,
                api: api[i],
                raft: raft[i],
                http: http[i],
                config,
                log: dir.join(format!("node{id}.log")),
                child: None,
            });
        }
        Ok(LocalCluster {
            nodes,
            exe,
            dir,
            default_ports: api_default && raft_default && http_default,
        })
    }

    /// Starts node `id` (`init`: it forms the cluster if new).
    pub fn start(&mut self, id: u64, init: bool) -> Result<(), String> {
        let exe = self.exe.clone();
        let dir = self.dir.clone();
        let node = self.node_mut(id)?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg("--config").arg(&node.config);
        if init {
            cmd.arg("--init");
        }
        let mut child = spawn_logged(&mut cmd, &node.log).map_err(|e| format!("node {id}: {e}"))?;
        if let Err(e) = pids::record(&dir, id, child.id()) {
            // A node nobody could find to stop later must not be left running.
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("node {id}: {e}"));
        }
        node.child = Some(child);
        Ok(())
    }

    /// The cluster's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the nodes listen on the fixed ports (API 7001.., peer 7101.., HTTP 7201..);
    /// false when some were taken and free ports were chosen instead.
    pub fn on_default_ports(&self) -> bool {
        self.default_ports
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut LocalNode, String> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| format!("no node {id}"))
    }

    /// Every node's client API address.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.api.to_string()).collect()
    }

    /// Kills node `id` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, id: u64) -> Result<(), String> {
        let dir = self.dir.clone();
        let node = self.node_mut(id)?;
        if let Some(mut child) = node.child.take() {
            child
                .kill()
                .map_err(|e| format!("killing node {id}: {e}"))?;
            let _ = child.wait();
            pids::forget(&dir, id);
        }
        Ok(())
    }

    /// Stops node `id` gracefully (SIGTERM), waiting up to `grace` before killing it.
    pub fn stop(&mut self, id: u64, grace: Duration) -> Result<(), String> {
        let dir = self.dir.clone();
        let node = self.node_mut(id)?;
        let Some(mut child) = node.child.take() else {
            return Ok(());
        };
        pids::forget(&dir, id);
        // SAFETY: sending a signal to a child process we started and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Leaves the processes running after this program exits.
    pub fn detach(&mut self) {
        for n in &mut self.nodes {
            n.child.take();
        }
    }

    /// Stops every node still running.
    pub fn stop_all(&mut self, grace: Duration) {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for id in ids {
            let _ = self.stop(id, grace);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Never leave orphans behind by accident (`detach` first to keep them).
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
                pids::forget(&self.dir, n.id);
            }
        }
    }
}
