//! The errors a node's API answers with, and how each becomes a gRPC status.

use qastore_proto::api_metadata;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// How long a client should wait before retrying while a leader is being elected.
pub const ELECTION_RETRY_MS: u64 = 300;

/// Why an API call failed. Every message names the field or the condition at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a record fails validation; nothing changed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request id was used before with another payload; nothing changed.
    #[error("{0}")]
    AlreadyExists(String),
    /// This node is not the leader and does not forward this call.
    #[error("this node is not the leader{}", leader_text(.leader_id, .leader_api))]
    NotLeader {
        /// The leader, if known.
        leader_id: Option<u64>,
        /// Its client address, if known.
        leader_api: Option<String>,
    },
    /// This node is not a member of the cluster (removed, or not added yet).
    #[error("{0}")]
    NotMember(String),
    /// No leader is known (an election may be under way); retry shortly.
    #[error("{0}; retry in {ELECTION_RETRY_MS} ms")]
    NoLeader(String),
    /// The node cannot serve the call now (stopping, or a read it cannot serve fresh enough).
    #[error("{0}")]
    Unavailable(String),
    /// Back-pressure or the disk quota: retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// For ack level ALL: committed at `log_index`, but not every voter held it in time.
    #[error("the write committed at log index {log_index}, but not every voter had it on disk within the deadline")]
    NotAllAcked {
        /// Where it committed.
        log_index: u64,
    },
    /// The call did not finish in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A failure of the node itself (I/O, damage).
    #[error("{0}")]
    Internal(String),
    /// A subscription's events left the journal: a start older than it holds, or a stream
    /// that fell that far behind.
    #[error("{message}; the earliest position still available is {earliest}")]
    OutOfRange {
        /// What happened.
        message: String,
        /// Where the journal's history now begins.
        earliest: qastore_exchange::feed::Position,
        /// For a stream cut off: the last position it delivered.
        last_delivered: Option<qastore_exchange::feed::Position>,
    },
}

fn leader_text(id: &Option<u64>, api: &Option<String>) -> String {
    match (id, api) {
        (Some(id), Some(api)) => format!("; the leader is node {id} at {api}"),
        (Some(id), None) => format!("; the leader is node {id}"),
        _ => "; no leader is known".into(),
    }
}

impl From<qastore_raft::Error> for ApiError {
    fn from(e: qastore_raft::Error) -> Self {
        use qastore_raft::Error as E;
        match e {
            E::InvalidArgument(m) => ApiError::InvalidArgument(m),
            E::NotLeader { leader: None } => {
                ApiError::NoLeader("no leader is known: an election may be under way".into())
            }
            E::NotLeader {
                leader: Some((id, node)),
            } => ApiError::NotLeader {
                leader_id: Some(id),
                leader_api: Some(node.api_addr),
            },
            E::NoLeader(m) => ApiError::NoLeader(m),
            E::Overloaded(limit) => ApiError::ResourceExhausted(limit.to_string()),
            E::NotAllAcked { log_index } => ApiError::NotAllAcked { log_index },
            E::Timeout(m) => ApiError::DeadlineExceeded(m),
            E::Raft { source } => ApiError::Unavailable(source.to_string()),
            E::Stopped(m) => ApiError::Unavailable(format!("the node is stopping: {m}")),
            // Retryable elsewhere: another member serves the same state.
            damaged @ E::Damaged(_) => {
                ApiError::Unavailable(format!("{damaged}; ask another node"))
            }
            E::Storage(qastore_lsm::Error::InvalidArgument(m)) => {
                ApiError::InvalidArgument(m.to_string())
            }
            E::Application(source) => match source.downcast::<qastore_exchange::Error>() {
                Ok(e) => ApiError::from(*e),
                Err(other) => ApiError::Internal(other.to_string()),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<qastore_lsm::Error> for ApiError {
    fn from(e: qastore_lsm::Error) -> Self {
        match e {
            qastore_lsm::Error::InvalidArgument(m) => ApiError::InvalidArgument(m.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<qastore_exchange::Error> for ApiError {
    fn from(e: qastore_exchange::Error) -> Self {
        match e {
            qastore_exchange::Error::Engine(e) => e.into(),
            qastore_exchange::Error::InvalidArgument(m) => ApiError::InvalidArgument(m.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The gRPC status code this error answers with.
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::NotLeader { .. } | ApiError::NotMember(_) => Code::FailedPrecondition,
            ApiError::NoLeader(_) | ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::NotAllAcked { .. } | ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::Internal(_) => Code::Internal,
            ApiError::OutOfRange { .. } => Code::OutOfRange,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let mut status = Status::new(e.code(), e.to_string());
        let md = status.metadata_mut();
        match &e {
            ApiError::NotLeader {
                leader_api: Some(api),
                ..
            } => {
                if let Ok(v) = MetadataValue::try_from(api.as_str()) {
                    md.insert(api_metadata::LEADER, v);
                }
            }
            ApiError::NoLeader(_) => {
                md.insert(api_metadata::RETRY_AFTER_MS, ELECTION_RETRY_MS.into());
            }
            ApiError::NotAllAcked { log_index } => {
                md.insert(api_metadata::LOG_INDEX, (*log_index).into());
            }
            ApiError::OutOfRange {
                earliest,
                last_delivered,
                ..
            } => {
                if let Ok(v) = MetadataValue::try_from(earliest.to_string()) {
                    md.insert(api_metadata::EARLIEST_POSITION, v);
                }
                if let Some(Ok(v)) = last_delivered.map(|p| MetadataValue::try_from(p.to_string()))
                {
                    md.insert(api_metadata::LAST_DELIVERED, v);
                }
            }
            _ => {}
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_their_hints() {
        let s = Status::from(ApiError::NotLeader {
            leader_id: Some(2),
            leader_api: Some("10.0.0.2:7001".into()),
        });
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("10.0.0.2:7001"));
        assert_eq!(
            s.metadata().get(api_metadata::LEADER).unwrap(),
            "10.0.0.2:7001"
        );
        let s = Status::from(ApiError::NotAllAcked { log_index: 42 });
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert_eq!(s.metadata().get(api_metadata::LOG_INDEX).unwrap(), "42");
        let s = Status::from(ApiError::NoLeader("election".into()));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.metadata().get(api_metadata::RETRY_AFTER_MS).is_some());
    }
}
