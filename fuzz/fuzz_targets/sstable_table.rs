//! A whole SSTable file: opened (footer, index, filter, properties), verified block by block,
//! then read by point lookups and scans.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::open_table(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_table(&mut sealed);
    fuzzing::open_table(&sealed);
});
