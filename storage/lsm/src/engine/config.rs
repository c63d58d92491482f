//! Engine settings.

use std::time::Duration;

use crate::compaction::{LevelShape, PressureLimits};
use crate::sstable::TableConfig;

/// The longest key prefix tables can be partitioned by.
pub const MAX_PARTITION_PREFIX: usize = 64;

/// How an engine is sized and limited.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The active memtable is frozen (between batches) once it holds about this many bytes.
    pub memtable_bytes: usize,
    /// Frozen memtables waiting for their flush; when this many are queued, writes wait.
    pub max_immutable_memtables: usize,
    /// Table layout.
    pub table: TableConfig,
    /// The longest key accepted.
    pub max_key_bytes: usize,
    /// The longest value accepted.
    pub max_value_bytes: usize,
    /// The manifest is rewritten as a snapshot once it grows past this size.
    pub max_manifest_bytes: u64,
    /// Level-0 runs ([`Version::level0_runs`](crate::version::Version::level0_runs): about
    /// one per flush) that trigger a compaction into level 1.
    pub l0_compaction_trigger: usize,
    /// Level-0 runs at which writes start slowing down.
    pub l0_slowdown_trigger: usize,
    /// Level-0 runs at which writes stop until compaction catches up.
    pub l0_stop_trigger: usize,
    /// Target size of level 1; each deeper level is `level_multiplier` times larger.
    pub level1_bytes: u64,
    /// Size ratio between adjacent levels.
    pub level_multiplier: u64,
    /// Compaction cuts its output into tables of about this size.
    pub target_file_bytes: u64,
    /// Flushes and compactions never put two keys that differ in their first this many bytes
    /// into one table (0: no such cut). With keys prefixed by what they hold, data written in
    /// key order (an event log by sequence number) then lands in tables of its own whose key
    /// ranges overlap nothing else, and compaction moves them down whole instead of rewriting
    /// them with everything else each time level 0 is merged into level 1.
    pub table_partition_prefix: usize,
    /// Pending compaction bytes at which writes start slowing down.
    pub pending_compaction_slowdown_bytes: u64,
    /// Pending compaction bytes at which writes stop.
    pub pending_compaction_stop_bytes: u64,
    /// The longest a write is delayed while slowing down.
    pub max_write_delay: Duration,
    /// Threads running compactions.
    pub compaction_threads: usize,
    /// How much nicer than the rest of the process the flush and compaction threads run
    /// (Linux thread niceness, 0 to 19; 0 leaves them alone). When CPU is short they yield
    /// to the threads that append, replicate and serve, which latency depends on, and still
    /// get the idle CPU; writes wait for them only once frozen memtables or level 0 pile up.
    pub background_nice: i32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 4,
            table: TableConfig::default(),
            max_key_bytes: 16 << 10,
            max_value_bytes: 16 << 20,
            max_manifest_bytes: 4 << 20,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            level1_bytes: 256 << 20,
            level_multiplier: 10,
            target_file_bytes: 64 << 20,
            table_partition_prefix: 0,
            pending_compaction_slowdown_bytes: 16 << 30,
            pending_compaction_stop_bytes: 64 << 30,
            max_write_delay: Duration::from_millis(10),
            compaction_threads: 1,
            background_nice: 10,
        }
    }
}

impl EngineConfig {
    /// Checks that the options can work together (for example that writes can never be stopped
    /// by a level-0 threshold below the one that starts compaction).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |name: &'static str, reason: String| -> crate::Result<()> {
            Err(crate::InvalidArgument::BadOption { name, reason }.into())
        };
        if self.memtable_bytes == 0 {
            return bad("memtable_bytes", "must be above zero".into());
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables", "must be at least 1".into());
        }
        if self.l0_compaction_trigger == 0 {
            return bad("l0_compaction_trigger", "must be at least 1".into());
        }
        if !(self.l0_compaction_trigger <= self.l0_slowdown_trigger
            && self.l0_slowdown_trigger <= self.l0_stop_trigger)
        {
            return bad(
                "l0_slowdown_trigger",
                format!(
                    "level-0 triggers must satisfy compaction ({}) <= slowdown ({}) <= stop ({})",
                    self.l0_compaction_trigger, self.l0_slowdown_trigger, self.l0_stop_trigger
                ),
            );
        }
        if self.pending_compaction_slowdown_bytes > self.pending_compaction_stop_bytes {
            return bad(
                "pending_compaction_slowdown_bytes",
                "must not exceed pending_compaction_stop_bytes".into(),
            );
        }
        if self.level1_bytes == 0 || self.target_file_bytes == 0 {
            return bad(
                "level1_bytes",
                "level and file targets must be above zero".into(),
            );
        }
        if self.table_partition_prefix > MAX_PARTITION_PREFIX {
            return bad(
                "table_partition_prefix",
                format!("must be at most {MAX_PARTITION_PREFIX}"),
            );
        }
        if self.level_multiplier < 2 {
            return bad("level_multiplier", "must be at least 2".into());
        }
        if !(0..=19).contains(&self.background_nice) {
            return bad("background_nice", "must be 0 to 19".into());
        }
        if self.table.block_bytes == 0 || self.table.restart_interval == 0 {
            return bad(
                "table.block_bytes",
                "block size and restart interval must be above zero".into(),
            );
        }
        Ok(())
    }

    /// How levels are sized.
    pub(crate) fn level_shape(&self) -> LevelShape {
        LevelShape {
            l0_trigger: self.l0_compaction_trigger,
            level1_bytes: self.level1_bytes,
            multiplier: self.level_multiplier,
            target_file_bytes: self.target_file_bytes,
            partition_prefix: self.table_partition_prefix,
        }
    }

    /// The back-pressure thresholds.
    pub(crate) fn pressure_limits(&self) -> PressureLimits {
        PressureLimits {
            l0_slowdown: self.l0_slowdown_trigger,
            l0_stop: self.l0_stop_trigger,
            pending_slowdown_bytes: self.pending_compaction_slowdown_bytes,
            pending_stop_bytes: self.pending_compaction_stop_bytes,
            max_write_delay: self.max_write_delay,
        }
    }
}
