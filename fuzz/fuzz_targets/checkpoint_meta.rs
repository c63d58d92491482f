//! A checkpoint's `CHECKPOINT` metadata file (also what a snapshot's description carries over
//! the network).

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::checkpoint::CheckpointMeta;

fuzz_target!(|data: &[u8]| {
    let _ = CheckpointMeta::decode(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_trailer(&mut sealed);
    let _ = CheckpointMeta::decode(&sealed);
});
