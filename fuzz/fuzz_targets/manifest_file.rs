//! A whole manifest file named by CURRENT: replayed edit by edit and recovered into a file set,
//! as opening an engine does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::recover_manifest(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_manifest(&mut sealed);
    fuzzing::recover_manifest(&sealed);
});
