//! What a client call can fail with.

use std::time::Duration;

use qastore_proto::api_metadata;
use tonic::{Code, Status};

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error status.
    #[error("{}: {}", code_name(.status.code()), .status.message())]
    Status {
        /// The status.
        status: Box<Status>,
    },
    /// An endpoint is not a usable address.
    #[error("bad endpoint: {0}")]
    BadEndpoint(String),
    /// No node knows a leader.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

/// The code's name as gRPC spells it.
pub(crate) fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        ClientError::Status {
            status: Box::new(status),
        }
    }
}

impl ClientError {
    /// The gRPC code, for a status.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { status } => Some(status.code()),
            _ => None,
        }
    }

    /// For a write with ack level ALL that committed but was not on every voter in time: its
    /// log index.
    pub fn committed_at(&self) -> Option<u64> {
        match self {
            ClientError::Status { status } if status.code() == Code::DeadlineExceeded => status
                .metadata()
                .get(api_metadata::LOG_INDEX)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            _ => None,
        }
    }

    /// Whether retrying the same request (same id, same batch) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Status { status } => match status.code() {
                Code::Unavailable
                | Code::ResourceExhausted
                | Code::Unknown
                | Code::Cancelled
                | Code::Aborted => true,
                // Not on the leader: retry where the hint points, or elsewhere.
                Code::FailedPrecondition => true,
                // Committed (ack ALL): retrying cannot help; otherwise it may.
                Code::DeadlineExceeded => self.committed_at().is_none(),
                _ => false,
            },
            ClientError::NoLeader(_) => true,
            ClientError::BadEndpoint(_) | ClientError::Closed => false,
        }
    }

    /// How long the node asked us to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { status } => status
                .metadata()
                .get(api_metadata::RETRY_AFTER_MS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_like_grpc_names_and_retry_rules_hold() {
        let e = ClientError::from(Status::invalid_argument("field x"));
        assert_eq!(e.to_string(), "INVALID_ARGUMENT: field x");
        assert!(!e.is_retryable());
        let e = ClientError::from(Status::unavailable("election"));
        assert!(e.is_retryable());
        let mut s = Status::deadline_exceeded("not all");
        s.metadata_mut()
            .insert(api_metadata::LOG_INDEX, 7u64.into());
        let e = ClientError::from(s);
        assert_eq!(e.committed_at(), Some(7));
        assert!(!e.is_retryable());
        assert!(ClientError::from(Status::resource_exhausted("quota")).is_retryable());
    }
}
