//! An SSTable bloom filter block body: the bit array and the probe count, then probed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_bloom_filter(data);
});
