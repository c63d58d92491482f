//! A node's configuration file (`node.toml`): who it is, where it listens, where its data
//! lives, its peers when the cluster is first formed, and its limits. Every field but
//! `node_id` has a default.
//!
//! ```toml
//! cluster_id = "prod-futures"
//! node_id = 1
//! data_dir = "/var/lib/qastore"
//! api_listen = "0.0.0.0:7001"      # client and admin gRPC
//! raft_listen = "0.0.0.0:7101"     # peers
//! http_listen = "0.0.0.0:7201"     # /metrics, /livez, /readyz, /admin/*
//! api_advertise = "10.0.0.1:7001"  # how others reach this node (default: the listen address)
//! raft_advertise = "10.0.0.1:7101"
//! disk_quota_bytes = 500_000_000_000
//! write_groups_in_flight = 1       # leader: entries of writes on their way before writes are grouped
//! write_group_max_writes = 256     # leader: the most writes one group carries
//! max_connections_per_client = 256 # TLS: connections one client identity (or IP without a
//!                                  # certificate) may hold open on the API port
//! max_streams_per_connection = 1024 # calls in flight on one connection (HTTP/2 streams)
//! insecure = false                 # true: run without [tls], knowingly (`qastore serve` refuses
//!                                  # a config with neither)
//!
//! [[initial_members]]              # only read when the cluster is first formed
//! id = 1
//! raft = "10.0.0.1:7101"
//! api = "10.0.0.1:7001"
//!
//! [raft]                           # see qastore_raft::RaftConfig
//! heartbeat_ms = 100
//!
//! [engine]                         # storage engine; every key shown with its default
//! memtable_bytes = 67108864        # 64 MiB: a memtable is frozen and flushed at this size
//! max_immutable_memtables = 4      # frozen memtables waiting for their flush before writes wait
//! level1_bytes = 268435456         # 256 MiB: target size of level 1
//! level_multiplier = 10            # each deeper level is this many times larger
//! target_file_bytes = 67108864     # 64 MiB: size of the tables compaction writes
//! l0_compaction_trigger = 4        # level-0 runs (about one per flush) that start a compaction
//! l0_slowdown_trigger = 20         # level-0 runs at which writes are delayed
//! l0_stop_trigger = 36             # level-0 runs at which writes wait for compaction
//! pending_compaction_slowdown_bytes = 17179869184  # 16 GiB: writes are delayed
//! pending_compaction_stop_bytes = 68719476736      # 64 GiB: writes wait
//! max_write_delay_ms = 10          # the longest delay of one write while slowing down
//! compaction_threads = 1
//! background_nice = 10             # flush and compaction run this much nicer (0 to 19)
//! block_bytes = 4096               # table data block size
//! bloom_bits_per_key = 10          # bloom filter bits per key
//! table_partition_prefix = 1       # tables never mix keys of different keyspaces (0: off)
//!
//! [wal]                            # write-ahead log (the Raft log); defaults shown
//! segment_bytes = 67108864         # 64 MiB: a new segment file starts past this size
//! max_entry_bytes = 67108864       # 64 MiB: the largest log entry; at least max_request_bytes
//!
//! [feed]                           # subscriptions; defaults shown
//! live_buffer_events = 262144      # recent events kept in memory for live streams
//! live_buffer_bytes = 134217728    # 128 MiB: the same bound in bytes
//! stream_buffer_events = 65536     # a stream further behind than this reads from the journal
//! stream_buffer_bytes = 33554432   # 32 MiB: the same bound in bytes
//! max_streams = 4096               # streams served at once
//!
//! [tls]                            # mutual TLS on the API and peer ports (absent: plain)
//! dir = "/etc/qastore/certs"       # ca.pem, node-<node_id>.pem, node-<node_id>.key
//! # ca_file, cert_file, key_file   # or each file by name
//! handshake_timeout_ms = 5000
//! ```
//!
//! Unknown keys are refused. The engine and WAL values are checked together when the config is
//! read (level-0 triggers must satisfy compaction <= slowdown <= stop, the pending-compaction
//! slowdown must not exceed the stop, sizes must be above zero, `level_multiplier` at least 2),
//! and a bad one is refused with its key, e.g. `setting engine.l0_stop_trigger: ...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use qastore_raft::RaftConfig;
use serde::Deserialize;

mod feed;
mod storage;
mod tls;

pub use feed::FeedSection;
pub use storage::{EngineSection, WalSection};
pub use tls::TlsSection;

/// A member of the cluster when it is first formed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialMember {
    /// Its node id.
    pub id: u64,
    /// Its peer address (host:port).
    pub raft: String,
    /// Its client API address (host:port).
    pub api: String,
}

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The cluster's id; every peer call carries it, and a data dir belongs to one cluster.
    pub cluster_id: String,
    /// This node's id: not 0, unique in the cluster and never reused.
    pub node_id: u64,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Where backups go (`Admin.Backup` writes nowhere else); default `<data_dir>/backups`.
    pub backup_dir: Option<PathBuf>,
    /// The client and admin gRPC address.
    pub api_listen: SocketAddr,
    /// The peer gRPC address.
    pub raft_listen: SocketAddr,
    /// The HTTP address for metrics, health and JSON admin routes.
    pub http_listen: SocketAddr,
    /// The client address others are told; default the listen address.
    pub api_advertise: Option<String>,
    /// The peer address others are told; default the listen address.
    pub raft_advertise: Option<String>,
    /// Forward writes that reach this node as a follower to the leader (otherwise answer
    /// FAILED_PRECONDITION with the leader's address).
    pub forward_writes: bool,
    /// Stop taking writes when the data directory holds this many bytes (0: no quota).
    pub disk_quota_bytes: u64,
    /// Raise the disk alarm at this fraction of the quota.
    pub disk_alarm_ratio: f64,
    /// How long a write may wait to commit, in milliseconds, when the client sets no deadline.
    pub write_timeout_ms: u64,
    /// On the leader, how many log entries of clients' writes may be on their way (proposed,
    /// not yet applied) before writes arriving meanwhile are gathered into one entry, a group,
    /// proposed as soon as one of those is applied (0: every write is an entry of its own).
    pub write_groups_in_flight: usize,
    /// The most clients' writes one group carries (a group also stops at 4,096 records and
    /// 4 MiB of records).
    pub write_group_max_writes: usize,
    /// How long a read may wait, in milliseconds, for the leader or for this node to catch up,
    /// when the client sets no deadline.
    pub read_timeout_ms: u64,
    /// The largest request the API accepts, in bytes.
    pub max_request_bytes: usize,
    /// The default objective of failover drills: the longest acceptable write outage, in
    /// milliseconds.
    pub drill_max_unavailable_ms: u64,
    /// The members when the cluster is first formed (`serve --init` on one of them).
    pub initial_members: Vec<InitialMember>,
    /// Peer Raft addresses to dial instead of the advertised ones (`"10.0.0.2:7101" =
    /// "10.1.0.2:7101"`): for proxies and NAT, and for fault injection in tests.
    pub dial_overrides: std::collections::BTreeMap<String, String>,
    /// Raft settings.
    pub raft: RaftConfig,
    /// Storage engine settings.
    pub engine: EngineSection,
    /// Write-ahead log settings.
    pub wal: WalSection,
    /// Subscription settings.
    pub feed: FeedSection,
    /// Mutual TLS settings (absent: plain gRPC).
    pub tls: TlsSection,
    /// With TLS, the most connections one client identity (or, without a certificate, one IP
    /// address) may hold open on the API port; more are closed after their handshake.
    pub max_connections_per_client: usize,
    /// The most calls in flight on one connection (HTTP/2 concurrent streams).
    pub max_streams_per_connection: u32,
    /// Run without TLS, knowingly: `qastore serve` refuses a config that has neither a `[tls]`
    /// section nor this (or its `--insecure` flag), and says "insecure" wherever the node
    /// reports on itself.
    pub insecure: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cluster_id: "qastore".into(),
            node_id: 0,
            data_dir: PathBuf::from("qastore-data"),
            backup_dir: None,
            api_listen: SocketAddr::from(([127, 0, 0, 1], 7001)),
            raft_listen: SocketAddr::from(([127, 0, 0, 1], 7101)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 7201)),
            api_advertise: None,
            raft_advertise: None,
            forward_writes: true,
            disk_quota_bytes: 0,
            disk_alarm_ratio: 0.85,
            write_timeout_ms: 5_000,
            write_groups_in_flight: 1,
            write_group_max_writes: 256,
            read_timeout_ms: 5_000,
            max_request_bytes: 64 << 20,
            drill_max_unavailable_ms: 10_000,
            initial_members: Vec::new(),
            dial_overrides: Default::default(),
            raft: RaftConfig::default(),
            engine: EngineSection::default(),
            wal: WalSection::default(),
            feed: FeedSection::default(),
            tls: TlsSection::default(),
            max_connections_per_client: 256,
            max_streams_per_connection: 1024,
            insecure: false,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("setting {field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl NodeConfig {
    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { reason, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Parses a config file's text and checks it.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "config".into(),
            reason: parse_reason(text, &e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        if self.node_id == 0 {
            return invalid("node_id", "must be set and not 0");
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > 64
            || !self
                .cluster_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return invalid(
                "cluster_id",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        if !(self.disk_alarm_ratio > 0.0 && self.disk_alarm_ratio <= 1.0) {
            return invalid("disk_alarm_ratio", "must be in (0, 1]");
        }
        if self.write_timeout_ms == 0 {
            return invalid("write_timeout_ms", "must be positive");
        }
        if self.write_group_max_writes == 0 {
            return invalid("write_group_max_writes", "must be at least 1");
        }
        if self.read_timeout_ms == 0 {
            return invalid("read_timeout_ms", "must be positive");
        }
        if self.max_request_bytes < 1024 {
            return invalid("max_request_bytes", "must be at least 1024");
        }
        let mut ids = std::collections::BTreeSet::new();
        for m in &self.initial_members {
            if m.id == 0 || !ids.insert(m.id) {
                return invalid("initial_members", "ids must be distinct and not 0");
            }
        }
        if !self.initial_members.is_empty() && !ids.contains(&self.node_id) {
            return invalid("initial_members", "must include this node");
        }
        self.raft.validate().map_err(|e| ConfigError::Invalid {
            field: "raft",
            reason: e.to_string(),
        })?;
        self.engine.validate()?;
        self.wal.validate(self.max_request_bytes)?;
        self.feed.validate()?;
        self.tls.validate()?;
        if self.max_connections_per_client == 0 {
            return invalid("max_connections_per_client", "must be above zero");
        }
        if self.max_streams_per_connection == 0 {
            return invalid("max_streams_per_connection", "must be above zero");
        }
        if self.insecure && self.tls_on() {
            return invalid(
                "insecure",
                "the [tls] section turns TLS on; remove one or the other",
            );
        }
        Ok(())
    }

    /// Whether the node's ports run mutual TLS.
    pub fn tls_on(&self) -> bool {
        self.tls.files(self.node_id).is_some()
    }

    /// The Raft node's settings; `api_addr` is the bound client address, told to others when
    /// `api_advertise` is not set.
    pub fn raft_node_config(
        &self,
        api_addr: SocketAddr,
        tls: Option<std::sync::Arc<qastore_security::tls::ReloadingTls>>,
    ) -> qastore_raft::RaftNodeConfig {
        qastore_raft::RaftNodeConfig {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            data_dir: self.data_dir.clone(),
            raft_listen: self.raft_listen,
            raft_advertise: self.raft_advertise.clone(),
            api_advertise: self
                .api_advertise
                .clone()
                .unwrap_or_else(|| api_addr.to_string()),
            raft: self.raft.clone(),
            engine: self.engine.options(),
            wal: self.wal.options(),
            dial_overrides: self.dial_overrides.clone().into_iter().collect(),
            tls,
        }
    }

    /// Where backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }
}

/// A parse error on one line (its line number and what is wrong), without the source excerpt
/// toml adds, so that a node refusing its config says why in one line.
fn parse_reason(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text
                .bytes()
                .take(span.start)
                .filter(|&b| b == b'\n')
                .count()
                + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_bad_ones_name_the_setting() {
        let c = NodeConfig::from_toml(
            r#"
            cluster_id = "c1"
            node_id = 2
            data_dir = "/tmp/n2"
            api_listen = "127.0.0.1:8001"
            [[initial_members]]
            id = 2
            raft = "127.0.0.1:8101"
            api = "127.0.0.1:8001"
            [raft]
            heartbeat_ms = 50
            "#,
        )
        .unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.raft.heartbeat_ms, 50);
        assert_eq!(c.backup_dir(), PathBuf::from("/tmp/n2/backups"));
        let e = NodeConfig::from_toml("node_id = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("node_id"), "{e}");
        let e = NodeConfig::from_toml("node_id = 1\nbogus = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = NodeConfig::from_toml("node_id = 1\ncluster_id = \"a b\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster_id"), "{e}");
    }

    #[test]
    fn every_engine_and_wal_key_reaches_the_raft_node_config() {
        let c = NodeConfig::from_toml(
            r#"
            node_id = 1
            max_request_bytes = 1048576
            [engine]
            memtable_bytes = 1000001
            max_immutable_memtables = 3
            level1_bytes = 1000003
            level_multiplier = 7
            target_file_bytes = 1000005
            l0_compaction_trigger = 2
            l0_slowdown_trigger = 9
            l0_stop_trigger = 11
            pending_compaction_slowdown_bytes = 1000007
            pending_compaction_stop_bytes = 1000009
            max_write_delay_ms = 13
            compaction_threads = 2
            background_nice = 4
            block_bytes = 8192
            bloom_bits_per_key = 14
            [wal]
            segment_bytes = 1000011
            max_entry_bytes = 2000000
            "#,
        )
        .unwrap();
        let api: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let r = c.raft_node_config(api, None);
        assert_eq!(r.node_id, 1);
        assert_eq!(r.api_advertise, "127.0.0.1:9001");
        let e = &r.engine;
        assert_eq!(e.memtable_bytes, 1_000_001);
        assert_eq!(e.max_immutable_memtables, 3);
        assert_eq!(e.level1_bytes, 1_000_003);
        assert_eq!(e.level_multiplier, 7);
        assert_eq!(e.target_file_bytes, 1_000_005);
        assert_eq!(e.l0_compaction_trigger, 2);
        assert_eq!(e.l0_slowdown_trigger, 9);
        assert_eq!(e.l0_stop_trigger, 11);
        assert_eq!(e.pending_compaction_slowdown_bytes, 1_000_007);
        assert_eq!(e.pending_compaction_stop_bytes, 1_000_009);
        assert_eq!(e.max_write_delay, std::time::Duration::from_millis(13));
        assert_eq!(e.compaction_threads, 2);
        assert_eq!(e.background_nice, 4);
        assert_eq!(e.table.block_bytes, 8192);
        assert_eq!(e.table.bloom_bits_per_key, 14);
        assert_eq!(r.wal.segment_bytes, 1_000_011);
        assert_eq!(r.wal.max_entry_bytes, 2_000_000);
    }

    #[test]
    fn a_parse_error_is_one_line_with_its_line_number() {
        let e = NodeConfig::from_toml("node_id = 1\n[engine]\nbogus = 3")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
    }
}
