//! WAL entries as a ranged log read decodes them: consecutive frames whose payloads are
//! index u64 | term u64 | data. The input is the frames' bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    // The first entry's index is where the read starts; a mismatch is one of the errors.
    let first = data
        .get(12..20)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    fuzzing::decode_wal_entries(data, first, 1);
    fuzzing::decode_wal_entry(data);
    let mut sealed = data.to_vec();
    let frames = qastore_fuzz::reseal_frames(&mut sealed, 0);
    fuzzing::decode_wal_entries(&sealed, first, frames);
    if let Some(payload) = sealed.get(12..) {
        fuzzing::decode_wal_entry(payload);
    }
});
