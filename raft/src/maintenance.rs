//! Background upkeep every node does for itself: snapshots by log bytes and time, and the
//! application's own upkeep (see [`crate::Application::upkeep`]) now and then.
//!
//! A snapshot is taken once `snapshot_log_bytes` were appended to the log since the last one,
//! or `snapshot_interval_secs` passed and something was applied since. Openraft then purges the
//! log behind the snapshot, keeping `log_entries_kept_behind_snapshot` entries for followers
//! that lag a little. The log is never purged past what the engine has flushed: a snapshot
//! covers exactly the flushed state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use qastore_lsm::wal::Wal;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RaftConfig;
use crate::state_machine::StateMachine;
use crate::types::Raft;

/// How often the policy is checked.
const TICK: Duration = Duration::from_secs(1);
/// How often the application's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(30);

/// Starts the upkeep task; it ends when `stop` turns true.
pub fn spawn(
    raft: Raft,
    sm: StateMachine,
    wal: Arc<Wal>,
    settings: RaftConfig,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut bytes_at_last = wal.stats().bytes;
        let mut last_snapshot = Instant::now();
        let mut last_upkeep = Instant::now();
        let interval = Duration::from_secs(settings.snapshot_interval_secs);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(TICK) => {}
            }
            let bytes = wal.stats().bytes;
            let (applied, snapshot) = {
                let m = raft.metrics().borrow_watched().clone();
                (m.last_applied.map(|a| a.index), m.snapshot.map(|s| s.index))
            };
            let grown = bytes.saturating_sub(bytes_at_last) >= settings.snapshot_log_bytes;
            let stale = last_snapshot.elapsed() >= interval && applied > snapshot;
            if grown || stale {
                tracing::info!(grown, stale, "taking a snapshot");
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                bytes_at_last = bytes;
                last_snapshot = Instant::now();
            }
            if last_upkeep.elapsed() >= UPKEEP_EVERY {
                last_upkeep = Instant::now();
                let sm = sm.clone();
                match tokio::task::spawn_blocking(move || sm.upkeep()).await {
                    Ok(Ok(())) | Err(_) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "the application's upkeep failed"),
                }
            }
        }
    })
}
