//! The 64-byte footer at the end of an SSTable: three block handles, version, checksum, magic.
//! The input is the footer, optionally preceded by bytes that stand for the rest of the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fn decode(file: &[u8]) {
    let footer = &file[file.len().saturating_sub(64)..];
    fuzzing::decode_footer(footer, file.len() as u64);
    fuzzing::decode_footer(footer, u64::MAX);
}

fuzz_target!(|data: &[u8]| {
    decode(data);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_footer(&mut sealed);
    decode(&sealed);
});
