//! The node's own Raft settings ([`RaftConfig`], from its config file). Cluster-wide settings
//! every node applies alike belong to the replicated application, which keeps them in its
//! state through the log.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// A node's Raft settings. Every field has a default suited to a three-node cluster on one
/// LAN; a `[raft]` table in the node's config file overrides them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// How often the leader sends heartbeats, in milliseconds.
    pub heartbeat_ms: u64,
    /// The shortest random part of the election timeout, in milliseconds. A follower that has
    /// heard nothing from its leader for `election_timeout_max_ms` plus a fresh random draw in
    /// `[election_timeout_min_ms, election_timeout_max_ms)` starts an election; the draw makes
    /// candidates rarely tie twice.
    pub election_timeout_min_ms: u64,
    /// The leader's lease, in milliseconds: a follower that heard from its leader within this
    /// long refuses to vote for anyone else (so a node that was cut off cannot depose a healthy
    /// leader), and waits this long plus the random draw before it runs itself.
    pub election_timeout_max_ms: u64,
    /// How long a follower whose append stream from the leader broke waits for the leader to
    /// answer a probe, in milliseconds, before it gives up its lease on that leader (see
    /// `leader_loss`); 0 turns the probe off, so only the election timeout notices a lost leader.
    pub leader_probe_timeout_ms: u64,
    /// Ask for a pre-vote before starting an election, so a node that was cut off does not
    /// disturb a healthy leader when it comes back.
    pub pre_vote: bool,
    /// The most entries one append carries.
    pub max_payload_entries: u64,
    /// The most bytes of entries one append carries (an entry larger than this travels alone),
    /// so that a request stays small next to the deadline of its answer.
    pub max_payload_bytes: u64,
    /// Connecting to a peer, and each answer a peer owes, fails after this long, in
    /// milliseconds; an answer to appends in flight may take longer by their bytes at
    /// `min_replication_bytes_per_sec`.
    pub rpc_timeout_ms: u64,
    /// The slowest transfer rate a peer is expected to keep up: a stream of appends waits
    /// `rpc_timeout_ms` plus the bytes in flight at this rate for its next answer.
    pub min_replication_bytes_per_sec: u64,
    /// Streaming one snapshot chunk fails after this long, in milliseconds.
    pub snapshot_chunk_timeout_ms: u64,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Take a snapshot once this many bytes were appended to the log since the last one...
    pub snapshot_log_bytes: u64,
    /// ...or this many seconds passed since the last one (if anything was applied since).
    pub snapshot_interval_secs: u64,
    /// Log entries kept behind the latest snapshot, so that a follower that lags a little
    /// catches up from the log rather than with a whole snapshot.
    pub log_entries_kept_behind_snapshot: u64,
    /// Refuse writes while more than this many committed entries wait to be applied.
    pub max_apply_lag: u64,
    /// How often the leader checks whether a scheduled command of the application is due
    /// (the node running the application reads it), in seconds.
    pub schedule_interval_secs: u64,
    /// How this node sends its log to followers: `"frames"` (the append stream's own framing
    /// on the peer port) or `"grpc"` (the peer service's `Append` call). A node takes both.
    pub append_transport: AppendTransport,
}

/// How a leader's append streams travel to its followers. Either way they carry the same
/// messages, on the same port, under the same checks (cluster, node ids, certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendTransport {
    /// Length-prefixed frames on a connection of their own (fewer hand-offs and no HTTP/2
    /// framing per append and answer).
    #[default]
    Frames,
    /// The `RaftPeer.Append` gRPC call.
    Grpc,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: 100,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 1000,
            leader_probe_timeout_ms: 250,
            pre_vote: true,
            max_payload_entries: 256,
            max_payload_bytes: 8 << 20,
            rpc_timeout_ms: 2000,
            min_replication_bytes_per_sec: 4 << 20,
            snapshot_chunk_timeout_ms: 10_000,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_log_bytes: 512 << 20,
            snapshot_interval_secs: 600,
            log_entries_kept_behind_snapshot: 100_000,
            max_apply_lag: 20_000,
            schedule_interval_secs: 60,
            append_transport: AppendTransport::default(),
        }
    }
}

impl RaftConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(Error::BadSetting {
                name,
                reason: reason.to_string(),
            })
        };
        if self.heartbeat_ms == 0 {
            return bad("heartbeat_ms", "must be above 0");
        }
        if self.election_timeout_min_ms <= self.heartbeat_ms * 2 {
            return bad(
                "election_timeout_min_ms",
                "must be more than twice heartbeat_ms",
            );
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return bad(
                "election_timeout_max_ms",
                "must be above election_timeout_min_ms",
            );
        }
        if self.max_payload_entries == 0 {
            return bad("max_payload_entries", "must be above 0");
        }
        if self.max_payload_bytes < 4096 {
            return bad("max_payload_bytes", "must be at least 4 KiB");
        }
        if self.min_replication_bytes_per_sec < 1024 {
            return bad("min_replication_bytes_per_sec", "must be at least 1 KiB");
        }
        if self.rpc_timeout_ms == 0 || self.snapshot_chunk_timeout_ms == 0 {
            return bad("rpc_timeout_ms", "timeouts must be above 0");
        }
        if !(4096..=(64 << 20)).contains(&self.snapshot_chunk_bytes) {
            return bad("snapshot_chunk_bytes", "must be between 4 KiB and 64 MiB");
        }
        if self.snapshot_interval_secs == 0 || self.schedule_interval_secs == 0 {
            return bad("snapshot_interval_secs", "intervals must be above 0");
        }
        if self.max_apply_lag == 0 {
            return bad("max_apply_lag", "must be above 0");
        }
        Ok(())
    }

    /// The openraft configuration these settings make.
    pub fn openraft_config(&self, cluster_id: &str) -> Result<openraft::Config> {
        self.validate()?;
        let config = openraft::Config {
            cluster_name: cluster_id.to_string(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            enable_pre_vote: Some(self.pre_vote),
            max_payload_entries: self.max_payload_entries,
            install_snapshot_timeout: self.snapshot_chunk_timeout_ms,
            // Snapshots follow bytes and time (see `snapshot_policy`), not entry counts.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: self.log_entries_kept_behind_snapshot,
            // A follower whose log lost entries it had acknowledged (a data directory restored
            // from an older copy) is caught up again from its real log end instead of being
            // sent the same refused append forever; the peer client reports the loss.
            allow_log_reversion: Some(true),
            ..Default::default()
        };
        config.validate().map_err(|e| Error::BadSetting {
            name: "raft",
            reason: e.to_string(),
        })
    }

    /// The leader probe's timeout, `None` if the probe is off.
    pub fn leader_probe_timeout(&self) -> Option<Duration> {
        (self.leader_probe_timeout_ms > 0)
            .then(|| Duration::from_millis(self.leader_probe_timeout_ms))
    }

    /// The peer call timeout.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_make_an_openraft_config() {
        let s = RaftConfig::default();
        let c = s.openraft_config("c1").unwrap();
        assert_eq!(c.heartbeat_interval, 100);
        assert_eq!(c.enable_pre_vote, Some(true));
    }

    #[test]
    fn inconsistent_settings_are_refused_with_the_field_named() {
        let s = RaftConfig {
            election_timeout_max_ms: 250,
            ..RaftConfig::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("election_timeout_max_ms"), "{e}");
        let s = RaftConfig {
            heartbeat_ms: 600,
            ..RaftConfig::default()
        };
        assert!(s.validate().is_err());
    }
}
