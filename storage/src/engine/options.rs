//! Engine settings.

use crate::sstable::TableOptions;

/// How an engine is sized and limited.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The active memtable is frozen (between batches) once it holds about this many bytes.
    pub memtable_bytes: usize,
    /// Frozen memtables waiting for their flush; when this many are queued, writes wait.
    pub max_immutable_memtables: usize,
    /// Table layout.
    pub table: TableOptions,
    /// The longest key accepted.
    pub max_key_bytes: usize,
    /// The longest value accepted.
    pub max_value_bytes: usize,
    /// The manifest is rewritten as a snapshot once it grows past this size.
    pub max_manifest_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 4,
            table: TableOptions::default(),
            max_key_bytes: 16 << 10,
            max_value_bytes: 16 << 20,
            max_manifest_bytes: 4 << 20,
        }
    }
}
