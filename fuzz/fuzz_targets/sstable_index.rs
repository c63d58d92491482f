//! An SSTable index block body: one (last key, block handle) per data block.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_index_block(data);
});
