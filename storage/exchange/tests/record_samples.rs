//! Archived sample records kept in the repository must still read as the samples: a change to
//! the archived format (a field, a type, the rkyv version or its features) fails here first.
//! Regenerate the file only on purpose, with `QASTORE_WRITE_SAMPLES=1`, together with a new
//! record format version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use qastore_exchange::record::samples;

fn sample_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/records-v1.bin")
}

#[test]
fn stored_sample_records_still_read() {
    let path = sample_file();
    if std::env::var_os("QASTORE_WRITE_SAMPLES").is_some() {
        std::fs::write(&path, samples::write_file(&samples::records())).unwrap();
    }
    let stored = std::fs::read(&path).unwrap();
    assert_eq!(samples::read_file(&stored).unwrap(), samples::records());
    // Writing today gives the very same bytes.
    assert_eq!(samples::write_file(&samples::records()), stored);
}
