//! What openraft's suite does not check about the log store: that `IOFlushed` waits for the
//! fsync, that a failed fsync fails it, and that the vote and the committed log id survive a
//! power cut.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use qastore_lsm::vfs::{Fault, FaultOp, PowerCut, SimVfs};
use qastore_lsm::wal::{Wal, WalConfig};
use qastore_raft::types::{log_id, Entry, Vote};
use qastore_raft::LogStore;
use qastore_raft::TypeConfig;

fn open(vfs: &SimVfs) -> LogStore {
    let wal = Wal::open(vfs.shared(), Path::new("/node/wal"), WalConfig::default()).unwrap();
    LogStore::new(Arc::new(wal))
}

fn blanks(term: u64, range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|i| Entry::new_blank(log_id(term, i))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_flushed_completes_only_after_the_fsync() {
    let vfs = SimVfs::new(1);
    let mut store = open(&vfs);
    vfs.set_sync_latency(Duration::from_millis(300));
    let syncs_before = vfs.sync_count();
    let (tx, mut rx) = TypeConfig::oneshot();
    store
        .append(blanks(1, 1..11), IOFlushed::signal(tx))
        .await
        .unwrap();
    // Readable at once...
    assert_eq!(store.try_get_log_entries(1..11).await.unwrap().len(), 10);
    // ...but not durable yet, and the callback knows it.
    let early = tokio::time::timeout(Duration::from_millis(100), &mut rx).await;
    assert!(early.is_err(), "IOFlushed completed before the fsync");
    assert_eq!(vfs.sync_count(), syncs_before, "no fsync finished yet");
    rx.await.unwrap().unwrap();
    assert!(
        vfs.sync_count() > syncs_before,
        "completion follows an fsync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_before_the_fsync_loses_the_entries_and_never_reports_them_durable() {
    let vfs = SimVfs::new(2);
    let mut store = open(&vfs);
    store
        .append(blanks(1, 1..4), IOFlushed::noop())
        .await
        .unwrap();
    store.wal().sync().unwrap();
    vfs.set_sync_latency(Duration::from_millis(300));
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(blanks(1, 4..8), IOFlushed::signal(tx))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    vfs.power_cut(PowerCut::DropUnsynced);
    let r = rx.await.unwrap();
    assert!(
        r.is_err(),
        "the entries were lost, so they must not be reported durable"
    );
    drop(store);
    vfs.restart();
    vfs.set_sync_latency(Duration::ZERO);
    let mut store = open(&vfs);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_fails_the_append_and_stops_the_log() {
    let vfs = SimVfs::new(3);
    let mut store = open(&vfs);
    vfs.inject(Fault::new(FaultOp::Sync).path_contains("wal"));
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(blanks(1, 1..3), IOFlushed::signal(tx))
        .await
        .unwrap();
    assert!(rx.await.unwrap().is_err());
    let again = store.append(blanks(1, 3..4), IOFlushed::noop()).await;
    assert!(again.is_err(), "no write is accepted after a failed fsync");
    assert!(store.save_vote(&Vote::new(2, 1)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_and_committed_survive_a_power_cut() {
    for mode in [
        PowerCut::DropUnsynced,
        PowerCut::KeepRandomPrefix,
        PowerCut::ZeroFillTail,
    ] {
        let vfs = SimVfs::new(4);
        let mut store = open(&vfs);
        store
            .append(blanks(3, 1..6), IOFlushed::noop())
            .await
            .unwrap();
        // The committed log id is written lazily: it is durable with the next durable
        // metadata write, here the vote's.
        store.save_committed(Some(log_id(3, 5))).await.unwrap();
        let vote = Vote::new_committed(3, 2);
        store.save_vote(&vote).await.unwrap();
        vfs.power_cut(mode);
        drop(store);
        vfs.restart();
        let mut store = open(&vfs);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote), "{mode:?}");
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(log_id(3, 5)),
            "{mode:?}"
        );
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(3, 5)),
            "entries before a durable vote are durable too ({mode:?})"
        );
    }
}
