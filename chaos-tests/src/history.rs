//! The history of a run: every operation with the time it was invoked and the time it
//! completed (nanoseconds since the run began). A write whose outcome is unknown (timed out,
//! connection lost) "may have happened": it completes at infinity.

use serde::Serialize;

/// Times are nanoseconds since the start of the run.
pub type Nanos = u64;

/// "Never completed": the operation may take effect at any time after its invocation.
pub const INFINITY: Nanos = u64::MAX;

/// How a read was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReadKind {
    /// Linearizable.
    Linearizable,
    /// Bounded staleness.
    Bounded,
    /// Local.
    Local,
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    /// Set register `key` to `value` (an account's balance).
    Write {
        /// The register.
        key: u32,
        /// Its unique new value.
        value: u64,
    },
    /// Read register `key` at node `node`.
    Read {
        /// The register.
        key: u32,
        /// The node asked.
        node: u64,
        /// Consistency.
        kind: ReadKind,
    },
    /// Insert a unique order (for the exactly-once and no-loss checks).
    Insert {
        /// The order id.
        order: String,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Outcome {
    /// It happened. For writes and inserts, the log index; for reads, the value read (0 when
    /// never written) and the applied indexes the node reported (the read saw the state as of
    /// some index in `from..=index`).
    Ok {
        /// Log index of a write; for a read, the node's applied index when it answered.
        index: u64,
        /// The value read (reads only).
        value: Option<u64>,
        /// For a read, the node's applied index when the read began.
        from: u64,
    },
    /// It certainly did not happen.
    Fail(String),
    /// It may or may not have happened.
    Unknown(String),
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The client that ran it (one operation in flight per client).
    pub process: u32,
    /// What it did.
    pub op: Op,
    /// When it was invoked.
    pub invoke: Nanos,
    /// When it completed ([`INFINITY`] for unknown outcomes).
    pub complete: Nanos,
    /// How it ended.
    pub outcome: Outcome,
}

impl Event {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }
}
