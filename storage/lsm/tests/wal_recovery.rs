//! WAL recovery: torn tails of every length are cut, damage anywhere else refuses to open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use qastore_lsm::vfs::{OsVfs, Vfs};
use qastore_lsm::wal::{segment_name, Wal, WalConfig, WalEntry};
use qastore_lsm::Error;

fn payload(index: u64) -> Vec<u8> {
    format!("entry {index} ")
        .repeat(1 + (index % 5) as usize)
        .into_bytes()
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<WalEntry> {
    range.map(|i| WalEntry::new(i, term, payload(i))).collect()
}

fn write_log(dir: &Path, count: u64, opts: WalConfig) {
    let wal = Wal::open(OsVfs::shared(), dir, opts).unwrap();
    wal.append_sync(&entries(1..=count, 1)).unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn check_entries(wal: &Wal, last: u64) {
    assert_eq!(wal.last_index(), Some(last));
    for e in wal.read(1..last + 1).unwrap() {
        assert_eq!(e.payload, payload(e.index), "entry {}", e.index);
    }
}

#[test]
fn every_torn_length_of_the_last_record_is_cut_and_the_log_reopens() {
    let src = tempfile::tempdir().unwrap();
    write_log(src.path(), 10, WalConfig::default());
    let seg = &segments(src.path())[0];
    let full = std::fs::read(seg).unwrap();
    // Where the last record starts: open a copy holding nine entries.
    let nine = tempfile::tempdir().unwrap();
    write_log(nine.path(), 9, WalConfig::default());
    let boundary = std::fs::metadata(&segments(nine.path())[0]).unwrap().len() as usize;

    for cut in boundary + 1..full.len() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(src.path().join("wal.meta"), dir.path().join("wal.meta")).unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        std::fs::write(&path, &full[..cut]).unwrap();
        let wal = Wal::open(OsVfs::shared(), dir.path(), WalConfig::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        check_entries(&wal, 9);
        assert_eq!(wal.stats().torn_tails_repaired, 1);
        // The log continues where the torn record was.
        wal.append_sync(&entries(10..=11, 1)).unwrap();
        drop(wal);
        let wal = Wal::open(OsVfs::shared(), dir.path(), WalConfig::default()).unwrap();
        check_entries(&wal, 11);
        assert_eq!(wal.stats().torn_tails_repaired, 0);
    }
}

#[test]
fn zero_filled_tails_are_cut() {
    let src = tempfile::tempdir().unwrap();
    write_log(src.path(), 10, WalConfig::default());
    let seg = &segments(src.path())[0];
    let full = std::fs::read(seg).unwrap();
    for zeros in [1usize, 11, 12, 13, 100, 4096, 70_000] {
        for zero_last_record in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(src.path().join("wal.meta"), dir.path().join("wal.meta")).unwrap();
            let mut bytes = full.clone();
            let mut expect_last = 10;
            if zero_last_record {
                // The size reached the disk but the last record's bytes did not.
                let n = bytes.len();
                bytes[n - 20..].fill(0);
                expect_last = 9;
            }
            bytes.extend(std::iter::repeat_n(0u8, zeros));
            std::fs::write(dir.path().join(seg.file_name().unwrap()), &bytes).unwrap();
            let wal = Wal::open(OsVfs::shared(), dir.path(), WalConfig::default()).unwrap();
            check_entries(&wal, expect_last);
        }
    }
}

fn expect_corruption(dir: &Path, file: &Path, offset: u64) {
    match Wal::open(OsVfs::shared(), dir, WalConfig::default()) {
        Err(Error::Corruption {
            file: f, offset: o, ..
        }) => {
            assert_eq!(f, file);
            assert_eq!(o, offset);
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("a damaged log opened"),
    }
}

#[test]
fn a_flipped_byte_mid_log_refuses_to_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, WalConfig::default());
    let seg = segments(dir.path())[0].clone();
    let before = std::fs::read(&seg).unwrap();
    // Record 5 starts after the 32-byte header and four frames.
    let offsets = frame_offsets(&before);
    let target = offsets[4];
    for (delta, what) in [(2usize, "length"), (20, "payload")] {
        let mut bytes = before.clone();
        bytes[target + delta] ^= 0x40;
        std::fs::write(&seg, &bytes).unwrap();
        expect_corruption(dir.path(), &seg, target as u64);
        let _ = what;
    }
    std::fs::write(&seg, &before).unwrap();
    assert!(Wal::open(OsVfs::shared(), dir.path(), WalConfig::default()).is_ok());
}

#[test]
fn damage_at_the_end_of_an_earlier_segment_is_corruption_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalConfig {
        segment_bytes: 300,
        ..WalConfig::default()
    };
    let wal = Wal::open(OsVfs::shared(), dir.path(), opts.clone()).unwrap();
    for i in 1..=20 {
        wal.append_sync(&entries(i..=i, 1)).unwrap();
    }
    drop(wal);
    let segs = segments(dir.path());
    assert!(segs.len() > 2, "small segments roll over");
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    let last_frame = *frame_offsets(&bytes).last().unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();
    expect_corruption(dir.path(), first, last_frame as u64);
}

#[test]
fn a_missing_middle_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalConfig {
        segment_bytes: 300,
        ..WalConfig::default()
    };
    let wal = Wal::open(OsVfs::shared(), dir.path(), opts).unwrap();
    for i in 1..=20 {
        wal.append_sync(&entries(i..=i, 1)).unwrap();
    }
    drop(wal);
    let segs = segments(dir.path());
    std::fs::remove_file(&segs[1]).unwrap();
    match Wal::open(OsVfs::shared(), dir.path(), WalConfig::default()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, segs[2]),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn segments_without_metadata_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, WalConfig::default());
    std::fs::remove_file(dir.path().join("wal.meta")).unwrap();
    let err = Wal::open(OsVfs::shared(), dir.path(), WalConfig::default()).unwrap_err();
    assert!(err.to_string().contains("wal.meta"), "{err}");
    assert!(err.to_string().contains(&segment_name(1)), "{err}");
}

#[test]
fn unfinished_segment_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, WalConfig::default());
    let stray = dir.path().join(format!("{}.tmp", segment_name(4)));
    std::fs::write(&stray, b"half a segment").unwrap();
    let wal = Wal::open(OsVfs::shared(), dir.path(), WalConfig::default()).unwrap();
    assert!(!stray.exists());
    check_entries(&wal, 3);
    assert!(OsVfs.exists(&dir.path().join(segment_name(1))).unwrap());
}

/// Frame start offsets of a segment (header is 32 bytes, frame header 12).
fn frame_offsets(seg: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 32;
    while pos + 12 <= seg.len() {
        out.push(pos);
        let len = u32::from_le_bytes(seg[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 12 + len;
    }
    out
}
