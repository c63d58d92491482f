//! A client's `WriteRequest` from the wire: decoded with prost, converted to exchange records,
//! then checked and archived into the write a log entry carries, as the leader does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use qastore_cluster::convert::records::records_from_pb;
use qastore_exchange::{Ack, EncodedWrite};
use qastore_proto::v1 as pb;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = pb::WriteRequest::decode(data) else {
        return;
    };
    let Ok(records) = records_from_pb(req.records) else {
        return;
    };
    if let Ok(write) = EncodedWrite::new(&req.client_id, req.request_id, Ack::Quorum, records) {
        let _ = write.decode_records();
    }
});
