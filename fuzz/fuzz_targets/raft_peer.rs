//! Messages a node receives from its peers: protobuf bytes decoded with prost, then converted
//! to Raft's types (entries decoded). The first byte picks the message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use qastore_proto::v1 as pb;
use qastore_raft::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((which, bytes)) = qastore_fuzz::split_selector(data) else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(m) = pb::AppendRequest::decode(bytes) {
                fuzzing::append_request_from_wire(m);
            }
        }
        1 => {
            if let Ok(m) = pb::AppendResponse::decode(bytes) {
                fuzzing::append_response_from_wire(m);
            }
        }
        2 => {
            if let Ok(m) = pb::VoteRequest::decode(bytes) {
                fuzzing::vote_request_from_wire(m);
            }
        }
        3 => {
            if let Ok(m) = pb::VoteResponse::decode(bytes) {
                fuzzing::vote_response_from_wire(m);
            }
        }
        4 => {
            if let Ok(pb::SnapshotChunk {
                chunk: Some(pb::snapshot_chunk::Chunk::Begin(begin)),
            }) = pb::SnapshotChunk::decode(bytes)
            {
                fuzzing::snapshot_begin_from_wire(begin);
            }
        }
        _ => {
            // A transfer and its answer, each length-delimited.
            let mut rest = bytes;
            let req = pb::TransferLeaderRequest::decode_length_delimited(&mut rest);
            let resp = pb::TransferLeaderResponse::decode_length_delimited(&mut rest);
            if let (Ok(req), Ok(resp)) = (req, resp) {
                fuzzing::transfer_from_wire(req, resp);
            }
        }
    }
});
