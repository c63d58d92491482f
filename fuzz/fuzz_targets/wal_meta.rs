//! One slot of the WAL metadata file (`wal.meta`): header, payload (vote, committed and purged
//! log ids) and checksum; and the payload on its own.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_wal_meta_slot(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_wal_meta_slot(&mut sealed);
    fuzzing::decode_wal_meta_slot(&sealed);
    if let Some(payload) = data.get(20..) {
        fuzzing::decode_wal_meta(payload);
    }
});
