//! Truncation and purging: durable when they return, never undone by a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use qastore_lsm::vfs::{PowerCut, SimVfs};
use qastore_lsm::wal::{LogId, Wal, WalConfig, WalEntry};
use qastore_lsm::{Error, InvalidArgument};

fn payload(index: u64, term: u64) -> Vec<u8> {
    format!("i{index}t{term}").into_bytes()
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<WalEntry> {
    range
        .map(|i| WalEntry::new(i, term, payload(i, term)))
        .collect()
}

fn small_segments() -> WalConfig {
    WalConfig {
        segment_bytes: 256,
        ..WalConfig::default()
    }
}

fn open(vfs: &SimVfs) -> Wal {
    Wal::open(vfs.shared(), Path::new("/wal"), small_segments()).unwrap()
}

fn terms(wal: &Wal) -> Vec<(u64, u64)> {
    let (Some(first), Some(last)) = (wal.first_index(), wal.last_index()) else {
        return Vec::new();
    };
    wal.read(first..last + 1)
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.payload, payload(e.index, e.term));
            (e.index, e.term)
        })
        .collect()
}

#[test]
fn truncate_then_append_then_power_cut_never_resurrects_cut_entries() {
    for mode in [
        PowerCut::DropUnsynced,
        PowerCut::KeepRandomPrefix,
        PowerCut::ZeroFillTail,
    ] {
        for cut_at in [95u64, 50, 37, 1] {
            let vfs = SimVfs::new(cut_at);
            let wal = open(&vfs);
            wal.append_sync(&entries(1..=100, 1)).unwrap();
            wal.truncate_after(cut_at).unwrap();
            assert_eq!(wal.last_index(), Some(cut_at));
            wal.append_sync(&entries(cut_at + 1..=cut_at + 3, 2))
                .unwrap();
            // Unsynced appends after that are fair game for the power cut.
            wal.append(&entries(cut_at + 4..=cut_at + 6, 2), |_| {})
                .unwrap();
            vfs.power_cut(mode);
            drop(wal);
            vfs.restart();
            let wal = open(&vfs);
            let got = terms(&wal);
            let last = wal.last_index().unwrap();
            assert!(
                (cut_at + 3..=cut_at + 6).contains(&last),
                "{mode:?} {cut_at}: {last}"
            );
            for (index, term) in got {
                let want = if index <= cut_at { 1 } else { 2 };
                assert_eq!(term, want, "{mode:?} cut {cut_at}: entry {index} came back");
            }
        }
    }
}

#[test]
fn a_power_cut_right_after_truncation_keeps_it() {
    let vfs = SimVfs::new(1);
    let wal = open(&vfs);
    wal.append_sync(&entries(1..=60, 1)).unwrap();
    wal.truncate_after(20).unwrap();
    vfs.power_cut(PowerCut::DropUnsynced);
    drop(wal);
    vfs.restart();
    let wal = open(&vfs);
    assert_eq!(wal.last_index(), Some(20));
    assert_eq!(terms(&wal).len(), 20);
}

#[test]
fn truncating_everything_lets_the_log_restart_at_the_same_index() {
    let vfs = SimVfs::new(1);
    let wal = open(&vfs);
    wal.append_sync(&entries(1..=10, 1)).unwrap();
    wal.truncate_from(1).unwrap();
    assert_eq!(wal.last_index(), None);
    wal.append_sync(&entries(1..=2, 3)).unwrap();
    drop(wal);
    let wal = open(&vfs);
    assert_eq!(terms(&wal), vec![(1, 3), (2, 3)]);
}

#[test]
fn purge_keeps_the_metadata_and_removes_whole_segments() {
    let vfs = SimVfs::new(1);
    let wal = open(&vfs);
    for chunk in 0..10 {
        wal.append_sync(&entries(chunk * 5 + 1..=chunk * 5 + 5, 1))
            .unwrap();
    }
    wal.save_vote(Bytes::from_static(b"vote-t1-n2")).unwrap();
    let segments_before = wal.stats().segments;
    wal.purge_up_to(LogId::new(1, 30)).unwrap();
    assert!(wal.stats().segments < segments_before);
    assert_eq!(wal.first_index(), Some(31));
    assert!(matches!(
        wal.read(29..32),
        Err(Error::InvalidArgument(InvalidArgument::OutOfLog { .. }))
    ));
    vfs.power_cut(PowerCut::DropUnsynced);
    drop(wal);
    vfs.restart();
    let wal = open(&vfs);
    let meta = wal.meta();
    assert_eq!(meta.last_purged, Some(LogId::new(1, 30)));
    assert_eq!(meta.vote.as_deref(), Some(&b"vote-t1-n2"[..]));
    assert_eq!(wal.first_index(), Some(31));
    assert_eq!(wal.last_index(), Some(50));
    assert_eq!(terms(&wal).len(), 20);
    assert!(
        wal.truncate_after(10).is_err(),
        "purged entries cannot be truncated"
    );
}

#[test]
fn purge_past_the_end_empties_the_log_and_appends_continue_after_it() {
    // This is what installing a snapshot ahead of the log looks like.
    let vfs = SimVfs::new(1);
    let wal = open(&vfs);
    wal.append_sync(&entries(1..=10, 1)).unwrap();
    wal.purge_up_to(LogId::new(4, 500)).unwrap();
    assert_eq!(wal.first_index(), None);
    assert_eq!(wal.last_log_id(), Some(LogId::new(4, 500)));
    let err = wal.append_sync(&entries(11..=11, 4)).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidArgument(InvalidArgument::NonContiguous { expected: 501, .. })
    ));
    wal.append_sync(&entries(501..=505, 4)).unwrap();
    drop(wal);
    let wal = open(&vfs);
    assert_eq!(wal.first_index(), Some(501));
    assert_eq!(terms(&wal).len(), 5);
    assert_eq!(wal.stats().segments, 1);
}

#[test]
fn committed_is_stored_lazily_and_survives_a_clean_close() {
    let vfs = SimVfs::new(1);
    let wal = open(&vfs);
    wal.append_sync(&entries(1..=5, 1)).unwrap();
    wal.save_committed(Some(LogId::new(1, 4))).unwrap();
    assert_eq!(wal.meta().committed, Some(LogId::new(1, 4)));
    drop(wal);
    let wal = open(&vfs);
    assert_eq!(wal.meta().committed, Some(LogId::new(1, 4)));
}

#[test]
fn appends_that_break_the_log_are_refused_and_change_nothing() {
    let vfs = SimVfs::new(1);
    let wal = open(&vfs);
    wal.append_sync(&entries(1..=5, 2)).unwrap();
    let gap = wal.append_sync(&entries(7..=7, 2)).unwrap_err();
    assert!(matches!(
        gap,
        Error::InvalidArgument(InvalidArgument::NonContiguous {
            index: 7,
            expected: 6
        })
    ));
    let term = wal.append_sync(&entries(6..=6, 1)).unwrap_err();
    assert!(matches!(
        term,
        Error::InvalidArgument(InvalidArgument::TermRegressed { .. })
    ));
    let big = Wal::open(
        vfs.shared(),
        "/other",
        WalConfig {
            max_entry_bytes: 10,
            ..WalConfig::default()
        },
    )
    .unwrap();
    assert!(matches!(
        big.append_sync(&[WalEntry::new(1, 1, vec![0u8; 11])]),
        Err(Error::InvalidArgument(
            InvalidArgument::EntryTooLarge { .. }
        ))
    ));
    assert_eq!(wal.last_index(), Some(5));
    assert!(wal.save_vote(Bytes::from(vec![0u8; 5000])).is_err());
}
