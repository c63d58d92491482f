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
//!
//! [[initial_members]]              # only read when the cluster is first formed
//! id = 1
//! raft = "10.0.0.1:7101"
//! api = "10.0.0.1:7001"
//!
//! [raft]                           # see qastore_raft::RaftSettings
//! heartbeat_ms = 100
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use qastore_raft::RaftSettings;
use serde::Deserialize;

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

/// Storage engine settings a node's config may override.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Bytes a memtable holds before it is flushed (default: the engine's).
    pub memtable_bytes: Option<usize>,
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
    pub raft: RaftSettings,
    /// Storage engine settings.
    pub engine: EngineSection,
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
            read_timeout_ms: 5_000,
            max_request_bytes: 64 << 20,
            drill_max_unavailable_ms: 10_000,
            initial_members: Vec::new(),
            dial_overrides: Default::default(),
            raft: RaftSettings::default(),
            engine: EngineSection::default(),
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
            reason: e.to_string(),
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
        Ok(())
    }

    /// Where backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
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
}
