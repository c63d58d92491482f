//! One manifest edit (tagged fields: file number, flushed sequence, added and removed tables),
//! decoded and applied to an empty file set.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_version_edit(data);
});
