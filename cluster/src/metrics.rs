//! Prometheus metrics: a process-wide recorder, the per-call figures services record, and a
//! task that samples the node's Raft and storage state every second.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::node::Node;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's metrics recorder (once) and returns the handle that renders the
/// `/metrics` page; `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// Records a write this node took as leader.
pub fn write_done(records: usize) {
    counter!("qastore_writes_total").increment(1);
    counter!("qastore_records_written_total").increment(records as u64);
}

/// Records a write that failed before or during the proposal.
pub fn proposal_failed() {
    counter!("qastore_proposals_failed_total").increment(1);
}

/// Records a write this node forwarded to the leader.
pub fn forwarded_write() {
    counter!("qastore_writes_forwarded_total").increment(1);
}

/// Samples the node's state into gauges every second until `stop`.
pub fn spawn_sampler(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut last_leader = None;
        loop {
            sample(&node, &mut last_leader);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}

fn sample(node: &Node, last_leader: &mut Option<Option<u64>>) {
    let s = node.raft.status();
    gauge!("qastore_raft_term").set(s.term as f64);
    gauge!("qastore_raft_has_leader").set(if s.leader.is_some() { 1.0 } else { 0.0 });
    gauge!("qastore_raft_is_leader").set(if s.leader == Some(s.node_id) {
        1.0
    } else {
        0.0
    });
    if last_leader.is_some_and(|l| l != s.leader) {
        counter!("qastore_raft_leader_changes_total").increment(1);
    }
    *last_leader = Some(s.leader);
    counter!("qastore_raft_leaders_lost_total").absolute(node.raft.leaders_lost());
    gauge!("qastore_raft_last_log_index").set(s.last_log_index.unwrap_or(0) as f64);
    gauge!("qastore_raft_commit_index").set(s.committed.unwrap_or(0) as f64);
    gauge!("qastore_raft_apply_index").set(s.applied.unwrap_or(0) as f64);
    gauge!("qastore_raft_snapshot_index").set(s.snapshot.unwrap_or(0) as f64);
    let w = node.raft.wal_stats();
    gauge!("qastore_wal_bytes").set(w.bytes as f64);
    gauge!("qastore_wal_entries").set(w.entries as f64);
    gauge!("qastore_wal_fsyncs").set(w.segment_syncs as f64);
    gauge!("qastore_wal_segments").set(w.segments as f64);
    if let Ok(engine) = node.raft.engine() {
        let e = engine.stats();
        gauge!("qastore_memtable_bytes").set((e.memtable_bytes + e.immutable_bytes) as f64);
        gauge!("qastore_compactions").set(e.compactions as f64);
        gauge!("qastore_flushes").set(e.flushes as f64);
        gauge!("qastore_pending_compaction_bytes").set(e.pending_compaction_bytes as f64);
        gauge!("qastore_write_stalls").set((e.slowdowns + e.stops) as f64);
        gauge!("qastore_write_stall_seconds").set((e.slowdown_micros + e.stop_micros) as f64 / 1e6);
    }
    gauge!("qastore_disk_used_bytes").set(node.quota.used_bytes() as f64);
    gauge!("qastore_disk_quota_bytes").set(node.quota.quota_bytes() as f64);
    gauge!("qastore_disk_alarm").set(if node.quota.alarm() { 1.0 } else { 0.0 });
}
