//! Rules that make chosen simulated operations fail.

use std::io;
use std::path::Path;

/// The kinds of operation a [`Fault`] can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `write_at` and `set_len`.
    Write,
    /// `sync_data` on a file.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// `rename`.
    Rename,
    /// `create`.
    Create,
    /// `remove`.
    Remove,
}

/// A rule that makes matching operations fail with an I/O error.
#[derive(Debug, Clone)]
pub struct Fault {
    op: FaultOp,
    path_contains: Option<String>,
    pub(super) after: u64,
    pub(super) times: Option<u64>,
    pub(super) kind: io::ErrorKind,
}

impl Fault {
    /// Fails every `op` from now on (narrow it with the builder methods).
    pub fn new(op: FaultOp) -> Self {
        Fault {
            op,
            path_contains: None,
            after: 0,
            times: None,
            kind: io::ErrorKind::Other,
        }
    }

    /// Only operations on paths containing `needle` match.
    pub fn path_contains(mut self, needle: impl Into<String>) -> Self {
        self.path_contains = Some(needle.into());
        self
    }

    /// The first `n` matching operations still succeed.
    pub fn after(mut self, n: u64) -> Self {
        self.after = n;
        self
    }

    /// Fail only `n` matching operations, then let them succeed again.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// The error kind to fail with (`StorageFull` to simulate a full disk).
    pub fn kind(mut self, kind: io::ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub(super) fn matches(&self, op: FaultOp, path: &Path) -> bool {
        self.op == op
            && self
                .path_contains
                .as_deref()
                .is_none_or(|n| path.to_string_lossy().contains(n))
    }
}

/// A fault rule and how often it has matched and failed so far.
#[derive(Debug)]
pub(super) struct FaultState {
    pub fault: Fault,
    pub seen: u64,
    pub failed: u64,
}
