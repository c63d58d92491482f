//! An SSTable properties block body: counts, sequence range, smallest and largest keys.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_properties(data);
});
