//! WAL durability: group commit, fatal fsync failures, and power cuts at random points.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use qastore_lsm::vfs::{Fault, FaultOp, SimVfs};
use qastore_lsm::wal::{LogId, Wal, WalConfig, WalEntry};
use qastore_lsm::Error;

fn payload(index: u64) -> Bytes {
    Bytes::from(format!("{index}:").repeat(1 + (index % 7) as usize))
}

fn entry(index: u64) -> WalEntry {
    WalEntry::new(index, 1, payload(index))
}

#[test]
fn group_commit_makes_many_appends_durable_with_few_fsyncs() {
    let vfs = SimVfs::new(1);
    vfs.set_sync_latency(Duration::from_millis(2));
    let wal = Wal::open(vfs.shared(), "/wal", WalConfig::default()).unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let appends = 2000u64;
    for i in 1..=appends {
        let done = done.clone();
        wal.append(&[entry(i)], move |r| {
            r.unwrap();
            done.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(done.load(Ordering::Relaxed), appends);
    let stats = wal.stats();
    assert_eq!(stats.appends, appends);
    assert_eq!(stats.durable_index, appends);
    assert!(
        stats.segment_syncs * 10 < appends,
        "{} fsyncs for {appends} appends",
        stats.segment_syncs
    );
    assert!(stats.largest_group > 10, "{stats:?}");
}

#[test]
fn appends_are_readable_before_they_are_durable() {
    let vfs = SimVfs::new(1);
    vfs.set_sync_latency(Duration::from_millis(50));
    let wal = Wal::open(vfs.shared(), "/wal", WalConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    wal.append(&[entry(1), entry(2)], move |r| tx.send(r).unwrap())
        .unwrap();
    assert_eq!(wal.read(1..3).unwrap()[1].payload, payload(2));
    assert!(rx.try_recv().is_err(), "not durable yet");
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
}

#[test]
fn a_failed_fsync_stops_the_log_and_never_reports_durable() {
    let vfs = SimVfs::new(1);
    let wal = Wal::open(vfs.shared(), "/wal", WalConfig::default()).unwrap();
    wal.append_sync(&[entry(1)]).unwrap();
    vfs.inject(Fault::new(FaultOp::Sync).path_contains("wal-").times(1));
    let (tx, rx) = mpsc::channel();
    for i in 2..=4 {
        let tx = tx.clone();
        wal.append(&[entry(i)], move |r| tx.send(r).unwrap())
            .unwrap_or_else(|e| assert!(matches!(e, Error::WalFailed(_))));
    }
    drop(tx);
    let results: Vec<_> = rx.iter().collect();
    assert!(!results.is_empty());
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::WalFailed(_)))));
    assert_eq!(wal.durable_index(), 1);
    // The fault is gone, but the WAL does not retry: it stays stopped.
    assert!(matches!(
        wal.append_sync(&[entry(5)]),
        Err(Error::WalFailed(_))
    ));
    assert!(matches!(wal.sync(), Err(Error::WalFailed(_))));
    assert!(wal.save_vote(Bytes::from_static(b"v")).is_err());
    assert!(wal.failure().is_some());
    // Reopening recovers whatever reached the disk.
    drop(wal);
    let wal = Wal::open(vfs.shared(), "/wal", WalConfig::default()).unwrap();
    assert!(wal.last_index() >= Some(1));
}

#[test]
fn a_failed_metadata_fsync_fails_the_vote() {
    let vfs = SimVfs::new(1);
    let wal = Wal::open(vfs.shared(), "/wal", WalConfig::default()).unwrap();
    vfs.inject(Fault::new(FaultOp::Sync).path_contains("wal.meta"));
    assert!(matches!(
        wal.save_vote(Bytes::from_static(b"v")),
        Err(Error::WalFailed(_))
    ));
    assert!(wal.append_sync(&[entry(1)]).is_err());
}

/// One step of a random WAL workload.
#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Sync,
    Vote(u8),
    Purge(u8),
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..20).prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => any::<u8>().prop_map(Op::Vote),
        1 => (1u8..30).prop_map(Op::Purge),
        1 => Just(Op::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Power is cut at a random operation of a random workload (appends, votes, purges, segment
    /// roll-overs). After the restart, everything reported durable is there, intact; whatever
    /// else is there is an intact continuation of it.
    #[test]
    fn power_cut_at_a_random_point_loses_nothing_reported_durable(
        ops in proptest::collection::vec(op(), 1..60),
        crash_at in 1u64..400,
        mode in support::power_cut_mode(),
        seed: u64,
    ) {
        let vfs = SimVfs::new(seed);
        let opts = WalConfig { segment_bytes: 512, ..WalConfig::default() };
        let wal = Wal::open(vfs.shared(), "/wal", opts.clone()).unwrap();
        vfs.crash_after_ops(crash_at, mode);
        let durable = Arc::new(AtomicU64::new(0));
        let mut next = 1u64;
        let mut vote_durable: Option<u8> = None;
        let mut purged_durable = 0u64;
        for op in ops {
            if vfs.is_halted() { break; }
            match op {
                Op::Append(n) => {
                    let batch: Vec<_> = (next..next + u64::from(n)).map(entry).collect();
                    let last = next + u64::from(n) - 1;
                    let d = durable.clone();
                    if wal.append(&batch, move |r| if r.is_ok() { d.fetch_max(last, Ordering::SeqCst); }).is_ok() {
                        next = last + 1;
                    }
                }
                Op::Sync => { let _ = wal.sync(); }
                Op::Vote(v) => if wal.save_vote(Bytes::from(vec![v; 3])).is_ok() { vote_durable = Some(v) },
                Op::Purge(n) => {
                    let upto = durable.load(Ordering::SeqCst).min(purged_durable + u64::from(n));
                    if upto > purged_durable && wal.purge_up_to(LogId::new(1, upto)).is_ok() {
                        purged_durable = upto;
                    }
                }
                Op::Commit => { let _ = wal.save_committed(Some(LogId::new(1, next - 1))); }
            }
        }
        if !vfs.is_halted() {
            vfs.power_cut(mode);
        }
        drop(wal);
        vfs.restart();
        let durable = durable.load(Ordering::SeqCst);
        let wal = Wal::open(vfs.shared(), Path::new("/wal"), opts).unwrap();
        let meta = wal.meta();
        prop_assert!(meta.last_purged.map_or(0, |p| p.index) >= purged_durable);
        if let Some(v) = vote_durable {
            // A later vote may have landed too, but some vote at least as new is there.
            prop_assert!(meta.vote.is_some(), "vote {v} lost");
        }
        let last = wal.last_index().unwrap_or(0);
        let purged = meta.last_purged.map_or(0, |p| p.index);
        prop_assert!(last.max(purged) >= durable, "durable {durable}, recovered {last}");
        if let (Some(first), Some(last)) = (wal.first_index(), wal.last_index()) {
            prop_assert_eq!(first, purged + 1);
            for e in wal.read(first..last + 1).unwrap() {
                prop_assert_eq!(e.payload, payload(e.index));
            }
        }
        // And the log keeps working.
        let resume = last.max(purged) + 1;
        wal.append_sync(&[entry(resume)]).unwrap();
    }
}
