//! An SSTable data block (entries, restart points, checksum): checked, walked and searched.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_data_block(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_trailer(&mut sealed);
    fuzzing::decode_data_block(&sealed);
});
