//! The `[engine]` and `[wal]` sections of `node.toml`: the storage settings an operator tunes.
//! An absent key keeps the engine's or the WAL's own default, so the defaults live in one place
//! (`EngineConfig::default`, `TableConfig::default`, `WalConfig::default`).

use std::time::Duration;

use qastore_lsm::wal::WalConfig;
use qastore_lsm::{EngineConfig, Error as StorageError, InvalidArgument};
use serde::Deserialize;

use super::ConfigError;

/// Storage engine settings a node's config may override; an absent key keeps the engine's
/// default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Bytes a memtable holds before it is frozen and flushed.
    pub memtable_bytes: Option<usize>,
    /// Frozen memtables that may wait for their flush before writes wait.
    pub max_immutable_memtables: Option<usize>,
    /// Target size of level 1.
    pub level1_bytes: Option<u64>,
    /// Size ratio between adjacent levels.
    pub level_multiplier: Option<u64>,
    /// Size of the tables compaction writes.
    pub target_file_bytes: Option<u64>,
    /// Level-0 runs (about one per flush) that start a compaction into level 1.
    pub l0_compaction_trigger: Option<usize>,
    /// Level-0 runs at which writes start slowing down.
    pub l0_slowdown_trigger: Option<usize>,
    /// Level-0 runs at which writes stop until compaction catches up.
    pub l0_stop_trigger: Option<usize>,
    /// Pending compaction bytes at which writes start slowing down.
    pub pending_compaction_slowdown_bytes: Option<u64>,
    /// Pending compaction bytes at which writes stop.
    pub pending_compaction_stop_bytes: Option<u64>,
    /// The longest a write is delayed while slowing down, in milliseconds.
    pub max_write_delay_ms: Option<u64>,
    /// Threads running compactions.
    pub compaction_threads: Option<usize>,
    /// How much nicer (Linux niceness, 0 to 19) the flush and compaction threads run.
    pub background_nice: Option<i32>,
    /// Size of a table's data block.
    pub block_bytes: Option<usize>,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: Option<usize>,
    /// Tables never mix keys that differ in their first this many bytes (default: the length
    /// of the keyspace name every key starts with; 0 turns partitions off).
    pub table_partition_prefix: Option<usize>,
}

impl EngineSection {
    /// The engine's defaults with the keys this section sets on top.
    pub fn options(&self) -> EngineConfig {
        let mut o = EngineConfig::default();
        set(&mut o.memtable_bytes, self.memtable_bytes);
        set(&mut o.max_immutable_memtables, self.max_immutable_memtables);
        set(&mut o.level1_bytes, self.level1_bytes);
        set(&mut o.level_multiplier, self.level_multiplier);
        set(&mut o.target_file_bytes, self.target_file_bytes);
        set(&mut o.l0_compaction_trigger, self.l0_compaction_trigger);
        set(&mut o.l0_slowdown_trigger, self.l0_slowdown_trigger);
        set(&mut o.l0_stop_trigger, self.l0_stop_trigger);
        set(
            &mut o.pending_compaction_slowdown_bytes,
            self.pending_compaction_slowdown_bytes,
        );
        set(
            &mut o.pending_compaction_stop_bytes,
            self.pending_compaction_stop_bytes,
        );
        set(
            &mut o.max_write_delay,
            self.max_write_delay_ms.map(Duration::from_millis),
        );
        set(&mut o.compaction_threads, self.compaction_threads);
        set(&mut o.background_nice, self.background_nice);
        set(&mut o.table.block_bytes, self.block_bytes);
        set(&mut o.table.bloom_bits_per_key, self.bloom_bits_per_key);
        o.table_partition_prefix = self
            .table_partition_prefix
            .unwrap_or(qastore_exchange::keys::SPACE_BYTES);
        o
    }

    /// Checks the resulting engine options, naming the `engine.*` key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let o = self.options();
        if o.compaction_threads == 0 {
            return Err(ConfigError::Invalid {
                field: "engine.compaction_threads",
                reason: "must be at least 1".into(),
            });
        }
        o.validate().map_err(|e| match e {
            StorageError::InvalidArgument(InvalidArgument::BadOption { name, reason }) => {
                ConfigError::Invalid {
                    field: engine_key(name, &o),
                    reason,
                }
            }
            other => ConfigError::Invalid {
                field: "engine",
                reason: other.to_string(),
            },
        })
    }
}

/// The `engine.*` key behind an option the engine refused. The engine reports some checks that
/// span several options under one name; the key named here is the one whose value breaks them.
fn engine_key(option: &str, o: &EngineConfig) -> &'static str {
    match option {
        "memtable_bytes" => "engine.memtable_bytes",
        "max_immutable_memtables" => "engine.max_immutable_memtables",
        "l0_compaction_trigger" => "engine.l0_compaction_trigger",
        "l0_slowdown_trigger" if o.l0_slowdown_trigger > o.l0_stop_trigger => {
            "engine.l0_stop_trigger"
        }
        "l0_slowdown_trigger" => "engine.l0_slowdown_trigger",
        "pending_compaction_slowdown_bytes" => "engine.pending_compaction_slowdown_bytes",
        "level1_bytes" if o.target_file_bytes == 0 => "engine.target_file_bytes",
        "level1_bytes" => "engine.level1_bytes",
        "level_multiplier" => "engine.level_multiplier",
        "table.block_bytes" => "engine.block_bytes",
        "table_partition_prefix" => "engine.table_partition_prefix",
        "background_nice" => "engine.background_nice",
        _ => "engine",
    }
}

/// Write-ahead log settings a node's config may override; an absent key keeps the WAL's
/// default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WalSection {
    /// A segment file is closed and a new one started once it would grow past this size.
    pub segment_bytes: Option<u64>,
    /// The largest payload one log entry may carry.
    pub max_entry_bytes: Option<usize>,
}

impl WalSection {
    /// The WAL's defaults with the keys this section sets on top.
    pub fn options(&self) -> WalConfig {
        let mut o = WalConfig::default();
        set(&mut o.segment_bytes, self.segment_bytes);
        set(&mut o.max_entry_bytes, self.max_entry_bytes);
        o
    }

    /// Checks the resulting WAL options, naming the `wal.*` key at fault. A write the API
    /// accepts (up to `max_request_bytes`) must fit in one log entry: a log that refuses an
    /// entry stops Raft on the node.
    pub fn validate(&self, max_request_bytes: usize) -> Result<(), ConfigError> {
        let o = self.options();
        o.validate().map_err(|e| match e {
            StorageError::InvalidArgument(InvalidArgument::BadOption { name, reason }) => {
                ConfigError::Invalid {
                    field: match name {
                        "segment_bytes" => "wal.segment_bytes",
                        "max_entry_bytes" => "wal.max_entry_bytes",
                        _ => "wal",
                    },
                    reason,
                }
            }
            other => ConfigError::Invalid {
                field: "wal",
                reason: other.to_string(),
            },
        })?;
        if o.max_entry_bytes < max_request_bytes {
            return Err(ConfigError::Invalid {
                field: "wal.max_entry_bytes",
                reason: format!(
                    "must be at least max_request_bytes ({max_request_bytes}), \
                     or a write the API accepts could not be logged"
                ),
            });
        }
        Ok(())
    }
}

/// Overrides `target` when the config sets a value.
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

#[cfg(test)]
mod tests {
    use qastore_lsm::wal::WalConfig;
    use qastore_lsm::EngineConfig;

    use crate::config::NodeConfig;

    /// The engine's defaults as a node uses them: tables partitioned by keyspace.
    fn node_engine_defaults() -> EngineConfig {
        EngineConfig {
            table_partition_prefix: qastore_exchange::keys::SPACE_BYTES,
            ..EngineConfig::default()
        }
    }

    /// The refusal of a config that is `node_id = 1` plus `extra`.
    fn refusal(extra: &str) -> String {
        NodeConfig::from_toml(&format!("node_id = 1\n{extra}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn absent_keys_keep_the_engine_and_wal_defaults() {
        let c = NodeConfig::from_toml("node_id = 1\n[engine]\n[wal]").unwrap();
        let r = c.raft_node_config("127.0.0.1:1".parse().unwrap(), None);
        assert_eq!(
            format!("{:?}", r.engine),
            format!("{:?}", node_engine_defaults())
        );
        assert_eq!(
            format!("{:?}", r.wal),
            format!("{:?}", WalConfig::default())
        );
    }

    #[test]
    fn the_documented_defaults_are_the_code_defaults() {
        // The values node.toml's documentation lists; they must not drift from the code.
        let c = NodeConfig::from_toml(
            "node_id = 1
            [engine]
            memtable_bytes = 67108864
            max_immutable_memtables = 4
            level1_bytes = 268435456
            level_multiplier = 10
            target_file_bytes = 67108864
            l0_compaction_trigger = 4
            l0_slowdown_trigger = 20
            l0_stop_trigger = 36
            pending_compaction_slowdown_bytes = 17179869184
            pending_compaction_stop_bytes = 68719476736
            max_write_delay_ms = 10
            compaction_threads = 1
            block_bytes = 4096
            bloom_bits_per_key = 10
            table_partition_prefix = 1
            [wal]
            segment_bytes = 67108864
            max_entry_bytes = 67108864",
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", c.engine.options()),
            format!("{:?}", node_engine_defaults())
        );
        assert_eq!(
            format!("{:?}", c.wal.options()),
            format!("{:?}", WalConfig::default())
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (extra, key) in [
            (
                "[engine]\nl0_slowdown_trigger = 20\nl0_stop_trigger = 10",
                "engine.l0_stop_trigger",
            ),
            ("[engine]\nl0_stop_trigger = 10", "engine.l0_stop_trigger"),
            (
                "[engine]\nl0_compaction_trigger = 30",
                "engine.l0_slowdown_trigger",
            ),
            (
                "[engine]\npending_compaction_slowdown_bytes = 100\npending_compaction_stop_bytes = 10",
                "engine.pending_compaction_slowdown_bytes",
            ),
            ("[engine]\nmemtable_bytes = 0", "engine.memtable_bytes"),
            ("[engine]\ntarget_file_bytes = 0", "engine.target_file_bytes"),
            ("[engine]\nlevel1_bytes = 0", "engine.level1_bytes"),
            ("[engine]\nlevel_multiplier = 1", "engine.level_multiplier"),
            ("[engine]\nblock_bytes = 0", "engine.block_bytes"),
            ("[engine]\ncompaction_threads = 0", "engine.compaction_threads"),
            ("[engine]\nbackground_nice = 20", "engine.background_nice"),
            ("[engine]\nbackground_nice = -1", "engine.background_nice"),
            (
                "[engine]\ntable_partition_prefix = 65",
                "engine.table_partition_prefix",
            ),
            ("[wal]\nsegment_bytes = 0", "wal.segment_bytes"),
            ("[wal]\nmax_entry_bytes = 0", "wal.max_entry_bytes"),
            ("[wal]\nmax_entry_bytes = 1048575", "wal.max_entry_bytes"),
        ] {
            let e = refusal(extra);
            assert!(e.contains(&format!("setting {key}:")), "{extra:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused() {
        let e = refusal("[engine]\nmemtable_size = 1");
        assert!(e.contains("memtable_size"), "{e}");
        let e = refusal("[wal]\nsegment_size = 1");
        assert!(e.contains("segment_size"), "{e}");
        let e = refusal("[engine]\nmemtable_bytes = -1");
        assert!(e.contains("line 3"), "{e}");
    }
}
