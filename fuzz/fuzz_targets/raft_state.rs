//! The Raft state kept beside the log and in checkpoints: vote, log id, stored membership and
//! a checkpoint's Raft blob. The first byte picks the decoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_raft::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((which, bytes)) = qastore_fuzz::split_selector(data) else {
        return;
    };
    match which % 4 {
        0 => fuzzing::decode_vote(bytes),
        1 => fuzzing::decode_log_id(bytes),
        2 => fuzzing::decode_stored_membership(bytes),
        _ => fuzzing::decode_snapshot_blob(bytes),
    };
});
