//! Conversions between openraft's messages and the peer protocol's (`qastore.v1`).
//!
//! Everything received is checked: a missing required field or an undecodable entry is an
//! error naming the field, never a panic.

use openraft::raft::{
    AppendEntriesRequest, StreamAppendError, StreamAppendResult, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use qastore_proto::v1 as pb;

use crate::codec;
use crate::error::CodecError;
use crate::types::{log_id, LogId, NodeId, TypeConfig, Vote};

type Result<T> = std::result::Result<T, CodecError>;

/// A vote for the wire.
pub fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.voted_for,
        committed: v.committed,
    }
}

/// A vote from the wire.
pub fn vote_from_pb(v: Option<pb::Vote>, field: &'static str) -> Result<Vote> {
    let v = v.ok_or_else(|| CodecError::new(field, "missing"))?;
    Ok(if v.committed {
        Vote::new_committed(v.term, v.node_id)
    } else {
        Vote::new(v.term, v.node_id)
    })
}

/// A log id for the wire.
pub fn log_id_to_pb(id: &LogId) -> pb::LogId {
    pb::LogId {
        term: id.leader_id.term,
        index: id.index,
    }
}

/// An optional log id from the wire.
pub fn log_id_from_pb(id: Option<pb::LogId>) -> Option<LogId> {
    id.map(|id| log_id(id.term, id.index))
}

/// An append request for the wire.
pub fn append_to_pb(req: &AppendEntriesRequest<TypeConfig>) -> pb::AppendRequest {
    pb::AppendRequest {
        vote: Some(vote_to_pb(&req.vote)),
        prev_log_id: req.prev_log_id.as_ref().map(log_id_to_pb),
        entries: req.entries.iter().map(codec::encode_entry).collect(),
        leader_commit: req.leader_commit.as_ref().map(log_id_to_pb),
    }
}

/// An append request from the wire.
pub fn append_from_pb(req: pb::AppendRequest) -> Result<AppendEntriesRequest<TypeConfig>> {
    let entries = req
        .entries
        .iter()
        .map(codec::decode_entry_bytes)
        .collect::<Result<Vec<_>>>()?;
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(req.vote, "append.vote")?,
        prev_log_id: log_id_from_pb(req.prev_log_id),
        entries,
        leader_commit: log_id_from_pb(req.leader_commit),
    })
}

/// A stream-append answer for the wire.
pub fn append_result_to_pb(r: &StreamAppendResult<TypeConfig>) -> pb::AppendResponse {
    use pb::append_response::Result as R;
    let result = match r {
        Ok(last) => R::Flushed(pb::Flushed {
            last: last.as_ref().map(log_id_to_pb),
        }),
        Err(StreamAppendError::Conflict(id)) => R::Conflict(log_id_to_pb(id)),
        Err(StreamAppendError::HigherVote(v)) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendResponse {
        result: Some(result),
    }
}

/// A stream-append answer from the wire.
pub fn append_result_from_pb(r: pb::AppendResponse) -> Result<StreamAppendResult<TypeConfig>> {
    use pb::append_response::Result as R;
    match r.result {
        Some(R::Flushed(f)) => Ok(Ok(log_id_from_pb(f.last))),
        Some(R::Conflict(id)) => Ok(Err(StreamAppendError::Conflict(log_id(id.term, id.index)))),
        Some(R::HigherVote(v)) => Ok(Err(StreamAppendError::HigherVote(vote_from_pb(
            Some(v),
            "append response vote",
        )?))),
        None => Err(CodecError::new("append response", "empty")),
    }
}

/// A vote request for the wire.
pub fn vote_request_to_pb(r: &VoteRequest<TypeConfig>) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: r.last_log_id.as_ref().map(log_id_to_pb),
        leadership_transfer: r.leadership_transfer,
    }
}

/// A vote request from the wire.
pub fn vote_request_from_pb(r: pb::VoteRequest) -> Result<VoteRequest<TypeConfig>> {
    let mut req = VoteRequest::new(
        vote_from_pb(r.vote, "vote_request.vote")?,
        log_id_from_pb(r.last_log_id),
    );
    req.leadership_transfer = r.leadership_transfer;
    Ok(req)
}

/// A vote answer for the wire.
pub fn vote_response_to_pb(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: r.last_log_id.as_ref().map(log_id_to_pb),
    }
}

/// A vote answer from the wire.
pub fn vote_response_from_pb(r: pb::VoteResponse) -> Result<VoteResponse<TypeConfig>> {
    Ok(VoteResponse::new(
        vote_from_pb(r.vote, "vote_response.vote")?,
        log_id_from_pb(r.last_log_id),
        r.vote_granted,
    ))
}

/// A leadership transfer for the wire.
pub fn transfer_to_pb(r: &TransferLeaderRequest<TypeConfig>) -> pb::TransferLeaderRequest {
    pb::TransferLeaderRequest {
        from_leader: Some(vote_to_pb(r.from_leader())),
        to_node: *r.to_node_id(),
        last_log_id: r.last_log_id().map(log_id_to_pb),
    }
}

/// A leadership transfer from the wire.
pub fn transfer_from_pb(r: pb::TransferLeaderRequest) -> Result<TransferLeaderRequest<TypeConfig>> {
    Ok(TransferLeaderRequest::new(
        vote_from_pb(r.from_leader, "transfer.from_leader")?,
        r.to_node as NodeId,
        log_id_from_pb(r.last_log_id),
    ))
}

/// A transfer answer for the wire.
pub fn transfer_response_to_pb(
    r: &TransferLeaderResponse<TypeConfig>,
) -> pb::TransferLeaderResponse {
    use openraft::raft::TransferLeaderError as E;
    use pb::transfer_leader_response::Result as R;
    let result = match r {
        Ok(()) => R::Accepted(pb::Accepted {}),
        Err(E::VoteChanged { actual, .. }) => R::VoteChanged(vote_to_pb(actual)),
        Err(E::LogNotFlushed { actual, .. }) => R::LogNotFlushed(pb::Flushed {
            last: actual.as_ref().map(log_id_to_pb),
        }),
    };
    pb::TransferLeaderResponse {
        result: Some(result),
    }
}

/// A transfer answer from the wire (`req` is the request it answers).
pub fn transfer_response_from_pb(
    req: &TransferLeaderRequest<TypeConfig>,
    r: pb::TransferLeaderResponse,
) -> Result<TransferLeaderResponse<TypeConfig>> {
    use openraft::raft::TransferLeaderError as E;
    use pb::transfer_leader_response::Result as R;
    match r.result {
        Some(R::Accepted(_)) => Ok(Ok(())),
        Some(R::VoteChanged(v)) => Ok(Err(E::VoteChanged {
            expected: *req.from_leader(),
            actual: vote_from_pb(Some(v), "transfer response vote")?,
        })),
        Some(R::LogNotFlushed(f)) => Ok(Err(E::LogNotFlushed {
            expected: req.last_log_id().copied(),
            actual: log_id_from_pb(f.last),
        })),
        None => Err(CodecError::new("transfer response", "empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::entry::RaftEntry;

    use crate::types::Entry;

    #[test]
    fn append_requests_and_answers_round_trip() {
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 9)),
            entries: vec![Entry::new_blank(log_id(3, 10))],
            leader_commit: Some(log_id(2, 9)),
        };
        let back = append_from_pb(append_to_pb(&req)).unwrap();
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.entries, req.entries);
        assert_eq!(back.leader_commit, req.leader_commit);
        let answers: [StreamAppendResult<TypeConfig>; 4] = [
            Ok(None),
            Ok(Some(log_id(3, 10))),
            Err(StreamAppendError::Conflict(log_id(2, 9))),
            Err(StreamAppendError::HigherVote(Vote::new(4, 2))),
        ];
        for a in answers {
            assert_eq!(append_result_from_pb(append_result_to_pb(&a)).unwrap(), a);
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let e = append_from_pb(pb::AppendRequest::default()).unwrap_err();
        assert!(e.to_string().contains("append.vote"), "{e}");
        assert!(append_result_from_pb(pb::AppendResponse::default()).is_err());
        let bad = pb::AppendRequest {
            vote: Some(pb::Vote::default()),
            entries: vec![bytes::Bytes::from_static(b"xx")],
            ..Default::default()
        };
        assert!(append_from_pb(bad).is_err());
    }
}
