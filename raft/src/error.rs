//! Errors of the Raft layer.

use std::io;

use crate::types::{NodeId, PeerNode};

/// Bytes that do not decode as the Raft state they should hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct CodecError {
    what: &'static str,
    reason: String,
}

impl CodecError {
    /// `what` could not be decoded, because of `reason`.
    pub fn new(what: &'static str, reason: impl Into<String>) -> Self {
        CodecError {
            what,
            reason: reason.into(),
        }
    }
}

/// Errors of the Raft layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine or write-ahead log failed.
    #[error(transparent)]
    Storage(#[from] qastore_lsm::Error),
    /// The replicated application failed (its engine errors arrive as [`Error::Storage`]);
    /// its error is kept as the source.
    #[error(transparent)]
    Application(BoxError),
    /// Stored or received bytes do not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The data directory belongs to another node or cluster, or is damaged.
    #[error("data directory {dir}: {reason}")]
    Identity {
        /// The directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting is out of range.
    #[error("setting {name}: {reason}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A request is malformed; nothing was done.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// This node is not the leader; `leader` is the one it knows of, if any.
    #[error("not the leader{}", leader_hint(.leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<(NodeId, PeerNode)>,
    },
    /// No leader can be reached now (an election may be under way); retry shortly.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The node cannot take more writes right now (disk quota, apply lag or engine stall);
    /// retry later.
    #[error("overloaded: {0}")]
    Overloaded(#[from] crate::admission::Overload),
    /// The write is committed but not every voter holds it yet (ack level `ALL`).
    #[error("write at log index {log_index} is committed, but not every voter had it within the deadline")]
    NotAllAcked {
        /// The write's log index.
        log_index: u64,
    },
    /// Raft refused or failed the operation; the error openraft gave is kept as the source.
    #[error("raft: {source}")]
    Raft {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// An I/O error outside the storage engine (sockets, files of the node).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// This node's engine is damaged: it serves nothing from it until it is repaired.
    #[error("this node's data is damaged and is being replaced from a peer: {0}")]
    Damaged(String),
    /// The node is shutting down or has stopped.
    #[error("the node has stopped: {0}")]
    Stopped(String),
    /// The node broke one of its own rules (a bug, not the caller's doing).
    #[error("internal error: {0}")]
    Internal(String),
}

fn leader_hint(leader: &Option<(NodeId, PeerNode)>) -> String {
    match leader {
        Some((id, node)) => format!("; the leader is node {id} ({node})"),
        None => "; no leader is known".to_string(),
    }
}

/// Results of the Raft layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error, boxed, so an error from openraft keeps its type and chain across our boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    /// Raft refused or failed an operation for `reason` (an error, or a message).
    pub fn raft(reason: impl Into<BoxError>) -> Error {
        Error::Raft {
            source: reason.into(),
        }
    }
}

/// Wraps an error for openraft's storage traits, which speak `io::Error`; the original error
/// stays reachable as the `io::Error`'s inner error.
pub(crate) fn to_io(e: impl Into<BoxError>) -> io::Error {
    io::Error::other(e)
}

impl From<crate::application::AppError> for Error {
    /// Engine errors met in the application become [`Error::Storage`], so that damage is
    /// recognised wherever it came from.
    fn from(e: crate::application::AppError) -> Self {
        match e {
            crate::application::AppError::Engine(e) => Error::Storage(e),
            crate::application::AppError::Other(e) => Error::Application(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_handed_to_openraft_keeps_its_type() {
        let original = CodecError::new("vote", "too short");
        let io = to_io(original.clone());
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<CodecError>());
        assert_eq!(inner, Some(&original));
    }

    #[test]
    fn a_raft_error_keeps_its_source() {
        let e = Error::raft(CodecError::new("membership", "bad"));
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<CodecError>());
        assert!(source.is_some());
        assert_eq!(e.to_string(), "raft: malformed membership: bad");
    }
}
