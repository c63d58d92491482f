//! What a client call can fail with.

use std::time::Duration;

use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
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
    /// The TLS material is unusable.
    #[error("tls: {0}")]
    BadTls(String),
    /// No node knows a leader.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A subscription could not be resumed on any node in the time allowed.
    #[error("no node served the subscription for {}s: {last}", .tried_for.as_secs_f64())]
    GaveUp {
        /// How long it kept trying.
        tried_for: Duration,
        /// The last failure.
        last: String,
    },
    /// A subscription started from a snapshot failed after part of the snapshot was delivered
    /// and before its last part: the rest cannot be had from another node without repeating
    /// what was delivered, so the caller must start again.
    #[error("the subscription's snapshot was cut off before its last part: {0}")]
    SnapshotInterrupted(String),
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
            ClientError::BadEndpoint(_)
            | ClientError::BadTls(_)
            | ClientError::Closed
            | ClientError::GaveUp { .. }
            | ClientError::SnapshotInterrupted(_) => false,
        }
    }

    /// On OUT_OF_RANGE from a subscription: the earliest position the journal still holds.
    pub fn earliest_position(&self) -> Option<pb::Position> {
        self.position_in(api_metadata::EARLIEST_POSITION)
    }

    /// On a subscription cut off by the node: the last position it delivered.
    pub fn last_delivered(&self) -> Option<pb::Position> {
        self.position_in(api_metadata::LAST_DELIVERED)
    }

    fn position_in(&self, key: &str) -> Option<pb::Position> {
        let ClientError::Status { status } = self else {
            return None;
        };
        let text = status.metadata().get(key)?.to_str().ok()?;
        parse_position(text)
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

/// Reads a position as the API prints it: `log_index:ordinal`.
pub fn parse_position(text: &str) -> Option<pb::Position> {
    let (index, ordinal) = text.trim().split_once(':')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(ordinal) {
        return None;
    }
    Some(pb::Position {
        log_index: index.parse().ok()?,
        ordinal: ordinal.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_carries_the_earliest_position() {
        let mut s = Status::out_of_range("field start: older than the journal");
        s.metadata_mut()
            .insert(api_metadata::EARLIEST_POSITION, "120:3".parse().unwrap());
        let e = ClientError::from(s);
        assert_eq!(
            e.earliest_position(),
            Some(pb::Position {
                log_index: 120,
                ordinal: 3
            })
        );
        assert_eq!(e.last_delivered(), None);
        assert!(!e.is_retryable());
        assert_eq!(parse_position("1:x"), None);
        assert_eq!(parse_position(":1"), None);
        let e = ClientError::GaveUp {
            tried_for: Duration::from_secs(30),
            last: "127.0.0.1:1: UNAVAILABLE: down".into(),
        };
        assert!(e
            .to_string()
            .starts_with("no node served the subscription for 30s"));
    }

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
