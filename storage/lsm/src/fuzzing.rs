//! Entry points for the fuzz targets in `fuzz/`, which need to reach decoders of the on-disk
//! formats that are otherwise internal. Not an API: each function feeds bytes to one decoder
//! and says whether it accepted them. A decoder given damaged bytes must answer with an error,
//! never panic, loop or allocate beyond what the bytes justify.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::ikey::{InternalKey, ValueKind};
use crate::manifest::{ManifestState, VersionEdit};
use crate::sstable::{block, bloom, footer, index, properties, Table};
use crate::version_set::VersionSet;
use crate::vfs::{SimVfs, Vfs};
use crate::wal::{meta, segment, WalEntry};

/// Decodes one WAL frame payload (index, term, data) as [`crate::wal::Wal::read`] does.
pub fn decode_wal_entry(payload: &[u8]) -> bool {
    WalEntry::decode(&Bytes::copy_from_slice(payload)).is_some()
}

/// Reads `count` entries from `first` out of consecutive WAL frames, as a ranged log read does.
pub fn decode_wal_entries(frames: &[u8], first: u64, count: usize) -> bool {
    let path = Path::new("wal-fuzz.log");
    segment::decode_entries(path, 0, Bytes::copy_from_slice(frames), first, count).is_ok()
}

/// Checks a WAL segment header.
pub fn decode_wal_segment_header(buf: &[u8]) -> bool {
    segment::decode_header(buf).is_ok()
}

/// Runs the recovery scan over a whole WAL segment, as the last segment of the log when
/// `is_last` (where a torn tail is allowed) or as an earlier one.
pub fn scan_wal_segment(buf: &[u8], is_last: bool) -> bool {
    // The file name names the first index; take it from the header so a good one matches.
    let first_index = segment::decode_header(buf).unwrap_or(0);
    segment::scan(Path::new("wal-fuzz.log"), buf, first_index, is_last).is_ok()
}

/// Decodes one slot of the WAL metadata file (header, payload, checksum).
pub fn decode_wal_meta_slot(slot: &[u8]) -> bool {
    meta::decode_slot(slot).is_some()
}

/// Decodes the payload of a WAL metadata slot (vote, committed and purged log ids).
pub fn decode_wal_meta(payload: &[u8]) -> bool {
    meta::WalMeta::decode(payload).is_some()
}

/// Checks an SSTable data block (entries, restarts, checksum), walks every entry and seeks to
/// keys in and around it.
pub fn decode_data_block(raw: &[u8]) -> bool {
    let Ok(block) = block::verify(&Bytes::copy_from_slice(raw)) else {
        return false;
    };
    let mut keys = Vec::new();
    let mut it = block.iter();
    loop {
        match it.advance() {
            Ok(true) => {
                if keys.len() < 16 {
                    keys.push(it.key().to_vec());
                }
            }
            Ok(false) => break,
            Err(_) => return false,
        }
    }
    let probes = [
        InternalKey::new(b"", u64::MAX, ValueKind::Put),
        InternalKey::new(&[0xff; 8], 0, ValueKind::Put),
    ];
    let targets = keys
        .iter()
        .filter_map(|k| InternalKey::from_vec(k.clone()))
        .chain(probes);
    for target in targets {
        if block.iter().seek(target.as_ikey()).is_err() {
            return false;
        }
    }
    true
}

/// Decodes an SSTable index block body (the checksum already stripped).
pub fn decode_index_block(body: &[u8]) -> bool {
    index::decode(body).is_some()
}

/// Parses an SSTable bloom filter block body and probes it.
pub fn decode_bloom_filter(body: &[u8]) -> bool {
    let Some(filter) = bloom::BloomFilter::parse(Bytes::copy_from_slice(body)) else {
        return false;
    };
    for key in [&b""[..], b"k", b"order/u1/42", body] {
        filter.may_contain(key);
    }
    true
}

/// Decodes an SSTable footer found at the end of a file of `file_len` bytes.
pub fn decode_footer(buf: &[u8], file_len: u64) -> bool {
    footer::Footer::decode(buf, file_len).is_ok()
}

/// Decodes an SSTable properties block body (the checksum already stripped).
pub fn decode_properties(body: &[u8]) -> bool {
    properties::Properties::decode(body).is_some()
}

/// Opens a whole SSTable file, verifies every block, and reads it by point lookups and scans.
pub fn open_table(file: &[u8]) -> bool {
    let vfs = SimVfs::new(0);
    let path = Path::new("/fuzz/000001.sst");
    let written = vfs
        .create_dir_all(Path::new("/fuzz"))
        .and_then(|()| vfs.create(path))
        .and_then(|f| f.write_at(0, file));
    if written.is_err() {
        return false;
    }
    let Ok(table) = Table::open(&vfs, path) else {
        return false;
    };
    let table = Arc::new(table);
    let verified = table.verify().is_ok();
    for key in [&b""[..], b"k", b"order/u1/42"] {
        let _ = table.get(key, u64::MAX);
    }
    for lower in [Bound::Unbounded, Bound::Included(&b"k"[..])] {
        // A damaged block ends the scan with one error; the cap only bounds the work per input.
        for row in table.iter(lower, Bound::Unbounded).take(4096) {
            if row.is_err() {
                break;
            }
        }
    }
    verified
}

/// Decodes one manifest edit and applies it to an empty file set.
pub fn decode_version_edit(payload: &[u8]) -> bool {
    let Some(edit) = VersionEdit::decode(payload) else {
        return false;
    };
    let mut state = ManifestState::default();
    state.apply(&edit);
    state.snapshot().encode();
    true
}

/// Recovers an engine directory holding `manifest` as its live manifest (named by CURRENT) and
/// no tables, as opening an engine does: replay, then a fresh manifest written from the state.
pub fn recover_manifest(manifest: &[u8]) -> bool {
    let vfs = SimVfs::new(0);
    let dir = Path::new("/fuzz");
    let written = vfs
        .create_dir_all(dir)
        .and_then(|()| vfs.create(&dir.join("MANIFEST-000001")))
        .and_then(|f| f.write_at(0, manifest))
        .and_then(|()| vfs.create(&dir.join(crate::filenames::CURRENT)))
        .and_then(|f| f.write_at(0, b"MANIFEST-000001\n"));
    if written.is_err() {
        return false;
    }
    VersionSet::recover(vfs.shared(), dir, 1 << 20).is_ok()
}
