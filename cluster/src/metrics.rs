//! Prometheus metrics: a process-wide recorder, the per-call figures services record, and a
//! task that samples the node's Raft and storage state every second.
//!
//! Every metric is described (a HELP line) and registered with a value when the recorder is
//! installed, so a scrape lists each one from the start, on every node. Running totals are
//! counters: the storage layer's own totals restart from zero when its engine is replaced (a
//! snapshot installed), so the sampler adds their growth instead of copying them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use qastore_raft::write_stages;

use crate::membership::Membership;
use crate::node::Node;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// A histogram with labels: described, registered per label set when first recorded.
    LabeledHistogram,
    /// A counter with labels, likewise.
    LabeledCounter,
    /// A gauge with labels, likewise.
    LabeledGauge,
}

/// Every metric the recorder exports: name, kind, HELP text.
const METRICS: &[(&str, Kind, &str)] = &[
    (
        "qastore_raft_term",
        Kind::Gauge,
        "The Raft term this node is in.",
    ),
    (
        "qastore_raft_has_leader",
        Kind::Gauge,
        "1 while this node is a member, knows a leader and heard from it (as leader: from a \
         quorum) within the longest election timeout; the same test /readyz makes first.",
    ),
    (
        "qastore_raft_is_leader",
        Kind::Gauge,
        "1 while this node is the leader.",
    ),
    (
        "qastore_raft_is_member",
        Kind::Gauge,
        "1 while this node is a member of its cluster; 0 once removed or before it is added.",
    ),
    (
        "qastore_raft_leader_changes_total",
        Kind::Counter,
        "Changes of the leader this node knows of.",
    ),
    (
        "qastore_raft_leaders_lost_total",
        Kind::Counter,
        "Leaders this node gave up on after they stopped answering its probes.",
    ),
    (
        "qastore_raft_append_failures_total",
        Kind::Counter,
        "Append streams to peers that failed (peer unreachable, answer overdue, stream broken).",
    ),
    (
        "qastore_raft_peer_lost_entries_total",
        Kind::Counter,
        "Times a follower was found lacking log entries it had acknowledged (its disk went \
         back in time); the leader then replicates its log again.",
    ),
    (
        "qastore_raft_replication_lag_max",
        Kind::Gauge,
        "On the leader, the most entries any member's log is behind its own; 0 elsewhere.",
    ),
    (
        "qastore_engine_damaged",
        Kind::Gauge,
        "1 while this node's engine is damaged (a failed checksum, a stopped engine): it \
         cannot apply, refuses reads, and is replacing its engine from a peer.",
    ),
    (
        "qastore_engine_repairs_total",
        Kind::Counter,
        "Damaged engines this node replaced with a checkpoint from a peer.",
    ),
    (
        "qastore_raft_last_log_index",
        Kind::Gauge,
        "The last index in this node's log.",
    ),
    (
        "qastore_raft_commit_index",
        Kind::Gauge,
        "The last index this node knows is committed.",
    ),
    (
        "qastore_raft_apply_index",
        Kind::Gauge,
        "The last index applied to this node's engine.",
    ),
    (
        "qastore_raft_snapshot_index",
        Kind::Gauge,
        "The last index this node's snapshot covers.",
    ),
    (
        "qastore_writes_total",
        Kind::Counter,
        "Writes this node committed as leader.",
    ),
    (
        "qastore_records_written_total",
        Kind::Counter,
        "Records in the writes this node committed as leader.",
    ),
    (
        "qastore_proposals_failed_total",
        Kind::Counter,
        "Writes that failed before or during their proposal on this node.",
    ),
    (
        "qastore_writes_forwarded_total",
        Kind::Counter,
        "Writes this node forwarded to the leader.",
    ),
    (
        "qastore_wal_fsync_seconds",
        Kind::Histogram,
        "Time of each group fsync of the write-ahead log.",
    ),
    (
        "qastore_wal_bytes_total",
        Kind::Counter,
        "Bytes written to the write-ahead log.",
    ),
    (
        "qastore_wal_entries_total",
        Kind::Counter,
        "Entries appended to the write-ahead log.",
    ),
    (
        "qastore_wal_fsyncs_total",
        Kind::Counter,
        "fsyncs of write-ahead log segments.",
    ),
    (
        "qastore_wal_segments",
        Kind::Gauge,
        "Segment files in the write-ahead log.",
    ),
    (
        "qastore_memtable_bytes",
        Kind::Gauge,
        "Bytes in the engine's memtables.",
    ),
    (
        "qastore_flushes_total",
        Kind::Counter,
        "Memtable flushes to tables.",
    ),
    (
        "qastore_compactions_total",
        Kind::Counter,
        "Compactions the engine ran.",
    ),
    (
        "qastore_pending_compaction_bytes",
        Kind::Gauge,
        "Bytes the engine estimates compaction still has to rewrite.",
    ),
    (
        "qastore_write_stalls_total",
        Kind::Counter,
        "Writes the engine slowed down or stopped to let flushes and compactions catch up.",
    ),
    (
        "qastore_disk_used_bytes",
        Kind::Gauge,
        "Bytes the node's data directory uses.",
    ),
    (
        "qastore_disk_quota_bytes",
        Kind::Gauge,
        "The disk quota of the data directory.",
    ),
    (
        "qastore_disk_alarm",
        Kind::Gauge,
        "1 while the disk use is over the alarm ratio of the quota (writes refused).",
    ),
    (
        "qastore_feed_consumers",
        Kind::Gauge,
        "Durable consumers (expired ones included), as this node's state holds them.",
    ),
    (
        "qastore_feed_consumers_expired_total",
        Kind::Counter,
        "Durable consumers this node expired applying retention: retention passed the hard \
         limit of entries held for them and dropped events they had not acknowledged.",
    ),
    (
        "qastore_rpc_seconds",
        Kind::LabeledHistogram,
        "Latency of the node's gRPC calls, by method.",
    ),
    (
        "qastore_refused_calls_total",
        Kind::LabeledCounter,
        "Client calls refused before they reached a service (no certificate of this cluster, \
         or a role missing), by method and gRPC code.",
    ),
    (
        "qastore_audit_unrecorded_total",
        Kind::Counter,
        "Operator actions that could not be put into the audit trail (no leader answered in \
         time).",
    ),
    (
        "qastore_tls_certificate_expiry_seconds",
        Kind::LabeledGauge,
        "Seconds until a certificate this node uses expires (certificate=\"node\" for its own, \
         \"ca:<serial>\" for each trusted CA); negative once expired.",
    ),
    (
        "qastore_api_connections",
        Kind::Gauge,
        "Client API connections open now (with TLS; counted per client identity).",
    ),
    (
        "qastore_api_connections_refused_total",
        Kind::Counter,
        "Client API connections closed after their handshake because their client held \
         max_connections_per_client already.",
    ),
    (
        "qastore_tls_reload_failures_total",
        Kind::Counter,
        "Times changed TLS files did not load (the previous material stayed in use).",
    ),
    (
        "qastore_tls_loads_total",
        Kind::Counter,
        "Times this node loaded new TLS material after it started (renewed certificates, a \
         rolled CA).",
    ),
    (
        "qastore_token_keys",
        Kind::Gauge,
        "Public keys clients' tokens are checked against (two while the token key is rolled; \
         0 on a node that takes no tokens).",
    ),
    (
        "qastore_token_key_loads_total",
        Kind::Counter,
        "Times this node loaded its token key file after it started.",
    ),
    (
        "qastore_token_key_reload_failures_total",
        Kind::Counter,
        "Times a changed token key file did not load (the keys loaded before stayed in use).",
    ),
    (
        "qastore_feed_streams",
        Kind::Gauge,
        "Subscription streams this node serves now.",
    ),
    (
        "qastore_feed_events_sent_total",
        Kind::Counter,
        "Events this node sent to subscribers (a conflated event counts once).",
    ),
    (
        "qastore_feed_bytes_sent_total",
        Kind::Counter,
        "Encoded bytes of the event frames this node sent to subscribers.",
    ),
    (
        "qastore_feed_streams_moved_to_journal_total",
        Kind::Counter,
        "Times a stream fell out of the live buffer (or started in the past) and read the \
         journal; it rejoins the live feed once caught up.",
    ),
    (
        "qastore_feed_streams_cut_total",
        Kind::Counter,
        "Streams ended because the events they still needed had left the journal.",
    ),
    (
        "qastore_feed_live_buffer_events",
        Kind::Gauge,
        "Events of recent batches the live feed holds in memory.",
    ),
    (
        "qastore_feed_live_buffer_bytes",
        Kind::Gauge,
        "Bytes of the events the live feed holds in memory.",
    ),
    (
        "qastore_feed_stream_lag_entries_max",
        Kind::Gauge,
        "Log entries between this node's applied index and the furthest-behind stream.",
    ),
    (
        "qastore_feed_stream_lag_seconds_max",
        Kind::Gauge,
        "Commit-time distance between the last applied batch and the last event the \
         furthest-behind stream took.",
    ),
];

/// A running total with a fractional value, which the recorder's integer counters cannot
/// hold; rendered after the recorder's page.
const STALL_SECONDS: &str = "qastore_write_stall_seconds_total";
const STALL_SECONDS_HELP: &str = "Time writes spent slowed down or stopped by the engine.";

static STALL_SECONDS_TOTAL: Mutex<f64> = Mutex::new(0.0);

/// Installs the process's metrics recorder (once), describes and registers every metric, and
/// returns the handle that renders the `/metrics` page; `None` if another recorder was
/// installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            register_all();
            Some(handle)
        })
        .clone()
}

fn register_all() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => {
                describe_counter!(name, help);
                counter!(name).increment(0);
            }
            Kind::Gauge => {
                describe_gauge!(name, help);
                gauge!(name).set(0.0);
            }
            Kind::Histogram => {
                describe_histogram!(name, help);
                // A registered histogram is listed (all buckets at zero) before its first value.
                let _ = histogram!(name);
            }
            Kind::LabeledHistogram => describe_histogram!(name, help),
            Kind::LabeledCounter => describe_counter!(name, help),
            Kind::LabeledGauge => describe_gauge!(name, help),
        }
    }
}

/// The histograms of the write path's stages, kept by the Raft layer (finer buckets than the
/// recorder's, and readable by the admin API); rendered after the recorder's page.
const WRITE_STAGE: &str = "qastore_write_stage_seconds";
const WRITE_STAGE_HELP: &str = "Where acknowledged writes spent their time, by stage of the \
     write path: validate, propose, commit, apply_wait, apply, answer (adding up to total) at \
     the leader; leader_fsync, send and follower_round_trip beside commit; follower_append on \
     followers; forward on a node that passed writes on.";

/// The `/metrics` page: the recorder's metrics, then the fractional totals and the write
/// stages.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut page = handle.render();
    let stall = *STALL_SECONDS_TOTAL.lock();
    let _ = write!(
        page,
        "# HELP {STALL_SECONDS} {STALL_SECONDS_HELP}\n# TYPE {STALL_SECONDS} counter\n\
         {STALL_SECONDS} {stall}\n"
    );
    render_write_stages(&mut page);
    page
}

/// Appends the write stages' histograms in the exposition format (cumulative buckets).
fn render_write_stages(page: &mut String) {
    let _ = write!(
        page,
        "# HELP {WRITE_STAGE} {WRITE_STAGE_HELP}\n# TYPE {WRITE_STAGE} histogram\n"
    );
    for (stage, h) in write_stages::snapshot() {
        let name = stage.name();
        let mut below = 0u64;
        for (bound_us, count) in write_stages::UPPER_BOUNDS_US.iter().zip(&h.counts) {
            below += count;
            let le = *bound_us as f64 / 1e6;
            let _ = writeln!(
                page,
                "{WRITE_STAGE}_bucket{{stage=\"{name}\",le=\"{le}\"}} {below}"
            );
        }
        let total = h.count();
        let sum = h.sum_ns as f64 / 1e9;
        let _ = write!(
            page,
            "{WRITE_STAGE}_bucket{{stage=\"{name}\",le=\"+Inf\"}} {total}\n\
             {WRITE_STAGE}_sum{{stage=\"{name}\"}} {sum}\n\
             {WRITE_STAGE}_count{{stage=\"{name}\"}} {total}\n"
        );
    }
}

/// Records a write this node took as leader.
pub fn write_done(records: usize) {
    counter!("qastore_writes_total").increment(1);
    counter!("qastore_records_written_total").increment(records as u64);
}

/// Records a group of `writes` clients' writes proposed as one log entry.
pub fn write_group(writes: usize) {
    counter!("qastore_write_groups_total").increment(1);
    counter!("qastore_grouped_writes_total").increment(writes as u64);
}

/// Records a write that failed before or during the proposal.
pub fn proposal_failed() {
    counter!("qastore_proposals_failed_total").increment(1);
}

/// Records a write this node forwarded to the leader.
pub fn forwarded_write() {
    counter!("qastore_writes_forwarded_total").increment(1);
}

/// Sets the gauges about the node's leader and membership from the same tests `/readyz`
/// makes; the `/metrics` handler calls it too, so a scrape never shows an older answer.
pub fn refresh_health(node: &Node) {
    let s = node.raft.status();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge!("qastore_raft_has_leader").set(flag(node.leader_contact().is_ok()));
    gauge!("qastore_raft_is_leader").set(flag(s.leader == Some(s.node_id)));
    gauge!("qastore_raft_is_member").set(flag(node.membership() == Membership::Member));
    let sm = node.raft.state_machine();
    gauge!("qastore_engine_damaged").set(flag(sm.damage_reason().is_some()));
    counter!("qastore_engine_repairs_total").absolute(sm.damage().repairs_total());
}

/// Samples the node's state into the metrics every second until `stop`.
pub fn spawn_sampler(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut state = Sampler::default();
        loop {
            state.sample(&node);
            crate::feed::metrics::sample(node.raft.app().live());
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}

/// What the sampler remembers between samples.
#[derive(Default)]
struct Sampler {
    last_leader: Option<Option<u64>>,
    /// The last value read of each source total.
    seen: HashMap<&'static str, u64>,
}

impl Sampler {
    /// How much the source total `name` grew since the last sample; a total that went down
    /// was restarted (a new engine), and all of its value is new.
    fn growth(&mut self, name: &'static str, value: u64) -> u64 {
        let last = self.seen.insert(name, value).unwrap_or(0);
        if value >= last {
            value - last
        } else {
            value
        }
    }

    /// Adds the growth of the source total to the counter of the same name.
    fn add(&mut self, name: &'static str, value: u64) {
        let grew = self.growth(name, value);
        counter!(name).increment(grew);
    }

    fn sample(&mut self, node: &Node) {
        refresh_health(node);
        if let Some(tls) = &node.raft.config().tls {
            // Asking for the material also picks up changed files.
            let creds = tls.credentials();
            let now = time::OffsetDateTime::now_utc();
            let left = |c: &qastore_security::CertSummary| (c.not_after - now).as_seconds_f64();
            gauge!("qastore_tls_certificate_expiry_seconds", "certificate" => "node")
                .set(left(creds.certificate()));
            for ca in creds.authorities() {
                gauge!("qastore_tls_certificate_expiry_seconds", "certificate" => format!("ca:{}", ca.serial))
                    .set(left(ca));
            }
            counter!("qastore_tls_reload_failures_total").absolute(tls.failed_reloads());
            counter!("qastore_tls_loads_total").absolute(tls.generation());
            gauge!("qastore_api_connections").set(node.connections.open() as f64);
            counter!("qastore_api_connections_refused_total").absolute(node.connections.refused());
        }
        if let Some(tokens) = &node.tokens {
            // Counting the keys also picks up a changed file.
            gauge!("qastore_token_keys").set(tokens.key_count() as f64);
            counter!("qastore_token_key_loads_total").absolute(tokens.loads().saturating_sub(1));
            counter!("qastore_token_key_reload_failures_total").absolute(tokens.failed_reloads());
        }
        let s = node.raft.status();
        gauge!("qastore_raft_term").set(s.term as f64);
        if self.last_leader.is_some_and(|l| l != s.leader) {
            counter!("qastore_raft_leader_changes_total").increment(1);
        }
        self.last_leader = Some(s.leader);
        counter!("qastore_raft_leaders_lost_total").absolute(node.raft.leaders_lost());
        let peers = node.raft.peer_stats();
        counter!("qastore_raft_append_failures_total")
            .absolute(peers.values().map(|p| p.append_failures).sum());
        counter!("qastore_raft_peer_lost_entries_total")
            .absolute(peers.values().map(|p| p.lost_entries).sum());
        let last = s.last_log_index.unwrap_or(0);
        let lag = if s.leader == Some(s.node_id) {
            s.replication
                .values()
                .map(|m| last.saturating_sub(m.unwrap_or(0)))
                .max()
        } else {
            None
        };
        gauge!("qastore_raft_replication_lag_max").set(lag.unwrap_or(0) as f64);
        gauge!("qastore_raft_last_log_index").set(s.last_log_index.unwrap_or(0) as f64);
        gauge!("qastore_raft_commit_index").set(s.committed.unwrap_or(0) as f64);
        gauge!("qastore_raft_apply_index").set(s.applied.unwrap_or(0) as f64);
        gauge!("qastore_raft_snapshot_index").set(s.snapshot.unwrap_or(0) as f64);
        let w = node.raft.wal_stats();
        self.add("qastore_wal_bytes_total", w.bytes);
        self.add("qastore_wal_entries_total", w.entries);
        self.add("qastore_wal_fsyncs_total", w.segment_syncs);
        gauge!("qastore_wal_segments").set(w.segments as f64);
        if let Ok(engine) = node.raft.engine() {
            let e = engine.stats();
            gauge!("qastore_memtable_bytes").set((e.memtable_bytes + e.immutable_bytes) as f64);
            self.add("qastore_compactions_total", e.compactions);
            self.add("qastore_flushes_total", e.flushes);
            gauge!("qastore_pending_compaction_bytes").set(e.pending_compaction_bytes as f64);
            self.add("qastore_write_stalls_total", e.slowdowns + e.stops);
            let micros = self.growth(STALL_SECONDS, e.slowdown_micros + e.stop_micros);
            *STALL_SECONDS_TOTAL.lock() += micros as f64 / 1e6;
            match qastore_exchange::consumer::list(&engine) {
                Ok(c) => gauge!("qastore_feed_consumers").set(c.len() as f64),
                Err(e) => tracing::debug!(error = %e, "durable consumers not counted"),
            }
        }
        self.add(
            "qastore_feed_consumers_expired_total",
            node.raft.app().consumers_expired(),
        );
        gauge!("qastore_disk_used_bytes").set(node.quota.used_bytes() as f64);
        gauge!("qastore_disk_quota_bytes").set(node.quota.quota_bytes() as f64);
        gauge!("qastore_disk_alarm").set(if node.quota.alarm() { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::Sampler;

    #[test]
    fn a_restarted_source_total_only_adds() {
        let mut s = Sampler::default();
        assert_eq!(s.growth("x", 5), 5);
        assert_eq!(s.growth("x", 8), 3);
        assert_eq!(s.growth("x", 8), 0);
        // A new engine counts from zero again.
        assert_eq!(s.growth("x", 2), 2);
        assert_eq!(s.growth("x", 4), 2);
    }
}
