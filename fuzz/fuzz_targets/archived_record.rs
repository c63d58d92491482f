//! Archived exchange records (rkyv, validated before use): one record, a batch as a write's
//! log entry holds it, and the zero-copy inspection path.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_exchange::record::{decode, inspect, Record};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Record>(data);
    let _ = decode::<Vec<Record>>(data);
    let _ = inspect::<Record, _>(data, std::mem::discriminant);
});
