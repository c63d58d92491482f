//! Entry points for the fuzz targets in `fuzz/`, which need to reach the Raft codecs and the
//! peer-message conversions that are otherwise internal. Not an API: each function feeds
//! stored or received bytes (or a message decoded from them) to one decoder and says whether
//! it accepted them.

use bytes::Bytes;
use qastore_lsm::checkpoint::CheckpointMeta;
use qastore_proto::v1 as pb;

use crate::codec;
use crate::network::convert;
use crate::snapshot;

/// Decodes a log entry in the form the peer network carries it (index, term, payload).
pub fn decode_entry(bytes: &[u8]) -> bool {
    codec::decode_entry_bytes(&Bytes::copy_from_slice(bytes)).is_ok()
}

/// Decodes a log entry's payload as read back from the write-ahead log.
pub fn decode_entry_payload(term: u64, index: u64, payload: &[u8]) -> bool {
    codec::decode_entry(term, index, &Bytes::copy_from_slice(payload)).is_ok()
}

/// Decodes a stored vote.
pub fn decode_vote(bytes: &[u8]) -> bool {
    codec::decode_vote(bytes).is_ok()
}

/// Decodes a stored optional log id.
pub fn decode_log_id(bytes: &[u8]) -> bool {
    codec::decode_log_id(bytes).is_ok()
}

/// Decodes a stored membership with the log id it was decided at.
pub fn decode_stored_membership(bytes: &[u8]) -> bool {
    codec::decode_stored_membership(bytes).is_ok()
}

/// Decodes the Raft state a checkpoint carries in its metadata blob.
pub fn decode_snapshot_blob(bytes: &[u8]) -> bool {
    snapshot::decode_blob(bytes).is_ok()
}

/// Converts a received append request (every entry decoded).
pub fn append_request_from_wire(req: pb::AppendRequest) -> bool {
    convert::append_from_pb(req).is_ok()
}

/// Converts a received answer to an append.
pub fn append_response_from_wire(resp: pb::AppendResponse) -> bool {
    convert::append_result_from_pb(resp).is_ok()
}

/// Converts a received vote request.
pub fn vote_request_from_wire(req: pb::VoteRequest) -> bool {
    convert::vote_request_from_pb(req).is_ok()
}

/// Converts a received answer to a vote request.
pub fn vote_response_from_wire(resp: pb::VoteResponse) -> bool {
    convert::vote_response_from_pb(resp).is_ok()
}

/// Converts a received leadership transfer, then an answer to it.
pub fn transfer_from_wire(
    req: pb::TransferLeaderRequest,
    resp: pb::TransferLeaderResponse,
) -> bool {
    let Ok(req) = convert::transfer_from_pb(req) else {
        return false;
    };
    convert::transfer_response_from_pb(&req, resp).is_ok()
}

/// Checks the description that opens a received snapshot as the peer server does: the vote,
/// the checkpoint's metadata file and the Raft state inside it.
pub fn snapshot_begin_from_wire(begin: pb::SnapshotBegin) -> bool {
    if convert::vote_from_pb(begin.vote, "snapshot.begin.vote").is_err() {
        return false;
    }
    let Some(meta) = CheckpointMeta::decode(&begin.checkpoint) else {
        return false;
    };
    snapshot::decode_blob(&meta.blob).is_ok()
}
