//! A Raft log entry as the peer network carries it (index u64 | term u64 | payload), and the
//! same payload as read back from the write-ahead log.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_raft::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_entry(data);
    if let Some(payload) = data.get(16..) {
        fuzzing::decode_entry_payload(1, 1, payload);
    }
});
