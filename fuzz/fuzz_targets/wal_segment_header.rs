//! The 32-byte header at the start of every WAL segment.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_wal_segment_header(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_wal_segment(&mut sealed);
    fuzzing::decode_wal_segment_header(&sealed);
});
