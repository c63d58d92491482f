//! One node process of a [`ProcCluster`](super::ProcCluster): its addresses, files and child.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::signal::{self, Signal};
use crate::KitError;

/// One node: where it listens, its files, and its process while it runs.
#[derive(Debug)]
pub struct NodeProc {
    /// Its node id.
    pub id: u64,
    /// Its client API address.
    pub api: SocketAddr,
    /// Its peer address.
    pub raft: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data: PathBuf,
    /// Its log file (standard output and error, appended across restarts).
    pub log: PathBuf,
    /// TOML added at the end of its config only (e.g. its `[dial_overrides]`).
    pub extra: String,
    /// Whether its config names the initial members (a node added later has none).
    pub(super) initial: bool,
    pub(super) child: Option<Child>,
    pub(super) paused: bool,
}

impl NodeProc {
    /// Whether its process was started and not yet stopped, killed or reaped.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether its process is frozen (SIGSTOP).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log so far (empty if there is none yet).
    pub fn read_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once (thawing it first if frozen, so it can die) and reaps it.
    pub(super) fn kill(&mut self) -> Result<(), KitError> {
        let paused = std::mem::take(&mut self.paused);
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if paused {
            let _ = signal::kill(child.id(), Signal::Cont);
        }
        let killed = child.kill();
        let _ = child.wait();
        killed.map_err(|e| KitError::io(format!("killing node {}", self.id), e))
    }

    /// SIGTERM, then waits up to `within` for the process to end: its exit status, or `None`
    /// (the process left running) if it did not end in time.
    pub(super) fn terminate(&mut self, within: Duration) -> Result<Option<ExitStatus>, KitError> {
        let id = self.id;
        let Some(child) = self.child.as_mut() else {
            return Err(KitError::Cluster(format!("node {id} is not running")));
        };
        if self.paused {
            let _ = signal::kill(child.id(), Signal::Cont);
            self.paused = false;
        }
        signal::kill(child.id(), Signal::Term)
            .map_err(|e| KitError::io(format!("stopping node {id}"), e))?;
        self.reap(within)
    }

    /// Waits up to `within` for the process to end by itself: its exit status, or `None` if
    /// it still runs (or was not running).
    pub(super) fn reap(&mut self, within: Duration) -> Result<Option<ExitStatus>, KitError> {
        let id = self.id;
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| KitError::io(format!("waiting for node {id}"), e))?
            {
                self.child = None;
                self.paused = false;
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
