//! Three `nats-server -js` processes clustered on loopback, each with its own store directory,
//! started, killed and restarted one by one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;

use qastore_testkit::{free_addresses, spawn_logged};

/// The cluster's name.
const CLUSTER: &str = "qastore-bench";

struct Server {
    name: String,
    client: SocketAddr,
    route: SocketAddr,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The server processes of a JetStream cluster.
pub struct Servers {
    exe: PathBuf,
    servers: Mutex<Vec<Server>>,
    dir: Mutex<Option<tempfile::TempDir>>,
}

impl Servers {
    /// Starts `count` servers of the program at `exe` in a new temporary directory.
    pub fn start(exe: &Path, count: usize) -> Result<Servers, String> {
        let dir = tempfile::Builder::new()
            .prefix("nats-bench-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let addrs = free_addresses(2 * count)?;
        let servers = (0..count)
            .map(|i| Server {
                name: format!("n{}", i + 1),
                client: addrs[i],
                route: addrs[count + i],
                store: dir.path().join(format!("n{}", i + 1)),
                log: dir.path().join(format!("n{}.log", i + 1)),
                child: None,
            })
            .collect();
        let s = Servers {
            exe: exe.to_path_buf(),
            servers: Mutex::new(servers),
            dir: Mutex::new(Some(dir)),
        };
        for i in 0..count {
            s.spawn(i)?;
        }
        Ok(s)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Server>) -> T) -> T {
        match self.servers.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Starts server `i` (again) on its store.
    pub fn spawn(&self, i: usize) -> Result<(), String> {
        let exe = self.exe.clone();
        self.with(|servers| {
            let routes = servers
                .iter()
                .map(|s| format!("nats://{}", s.route))
                .collect::<Vec<_>>()
                .join(",");
            let s = servers.get_mut(i).ok_or("no such server")?;
            let mut cmd = Command::new(&exe);
            cmd.arg("--jetstream")
                .arg("--server_name")
                .arg(&s.name)
                .arg("--addr")
                .arg(s.client.ip().to_string())
                .arg("--port")
                .arg(s.client.port().to_string())
                .arg("--store_dir")
                .arg(&s.store)
                .arg("--cluster_name")
                .arg(CLUSTER)
                .arg("--cluster")
                .arg(format!("nats://{}", s.route))
                .arg("--routes")
                .arg(&routes);
            s.child = Some(spawn_logged(&mut cmd, &s.log)?);
            Ok(())
        })
    }

    /// Kills server `i` (SIGKILL).
    pub fn kill(&self, i: usize) -> Result<(), String> {
        self.with(|servers| {
            let s = servers.get_mut(i).ok_or("no such server")?;
            if let Some(mut child) = s.child.take() {
                child
                    .kill()
                    .map_err(|e| format!("killing {}: {e}", s.name))?;
                let _ = child.wait();
            }
            Ok(())
        })
    }

    /// The client URL of server `i`.
    pub fn url(&self, i: usize) -> Option<String> {
        self.with(|s| s.get(i).map(|s| format!("nats://{}", s.client)))
    }

    /// The server names, server 0 first.
    pub fn names(&self) -> Vec<String> {
        self.with(|s| s.iter().map(|s| s.name.clone()).collect())
    }

    /// The process ids of the running servers.
    pub fn pids(&self) -> Vec<u32> {
        self.with(|s| {
            s.iter()
                .filter_map(|s| s.child.as_ref().map(Child::id))
                .collect()
        })
    }

    /// Stops every server and removes the files.
    pub fn shutdown(&self) {
        self.with(|servers| {
            for s in servers.iter_mut() {
                if let Some(mut c) = s.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        });
        if let Ok(mut d) = self.dir.lock() {
            d.take();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.shutdown();
    }
}
