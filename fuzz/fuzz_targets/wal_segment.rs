//! A whole WAL segment file through the recovery scan, as the last segment of the log (a torn
//! tail is cut) and as an earlier one (any damage is corruption).

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_lsm::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::scan_wal_segment(data, true);
    let mut sealed = data.to_vec();
    qastore_fuzz::reseal_wal_segment(&mut sealed);
    fuzzing::scan_wal_segment(&sealed, true);
    fuzzing::scan_wal_segment(&sealed, false);
});
