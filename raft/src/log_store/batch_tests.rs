//! Replication batches the log store hands openraft are bounded by bytes as well as entries:
//! large entries go a few at a time (one alone when it is over the budget), small ones many
//! at a time, always in order and never none.

use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::RaftLogReader;
use qastore_lsm::vfs::SimVfs;
use qastore_lsm::wal::{Wal, WalConfig};

use super::LogStore;
use crate::codec;
use crate::command::Request;
use crate::types::{log_id, Entry};

/// An entry at `index` whose payload is `records` hundred-byte records' worth of bytes.
fn entry(index: u64, records: usize) -> Entry {
    let payload = bytes::Bytes::from(vec![7u8; records * 100]);
    Entry::new_normal(log_id(1, index), Request::from_bytes(payload))
}

async fn store_with(vfs: &SimVfs, sizes: &[usize], budget: u64) -> LogStore {
    let wal = Wal::open(vfs.shared(), Path::new("/node/wal"), WalConfig::default()).unwrap();
    let mut store = LogStore::new(Arc::new(wal)).with_max_batch_bytes(budget);
    let entries: Vec<Entry> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| entry(i as u64 + 1, *n))
        .collect();
    store.append(entries, IOFlushed::noop()).await.unwrap();
    store
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id().index).collect()
}

#[tokio::test]
async fn a_batch_stops_at_the_byte_budget_but_always_carries_an_entry() {
    let big = codec::to_wal(&entry(1, 1000)).payload.len() as u64;
    let small = codec::to_wal(&entry(4, 1)).payload.len() as u64;
    assert!(small * 10 < big / 2, "sizes: {big} and {small}");
    // Entries 1-3 large, 4-6 small; room for one and a half large ones.
    let vfs = SimVfs::new(7);
    let sizes = [1000, 1000, 1000, 1, 1, 1];
    let mut store = store_with(&vfs, &sizes, big * 3 / 2).await;
    let got = store.limited_get_log_entries(1, 7).await.unwrap();
    assert_eq!(indexes(&got), vec![1], "a second large entry does not fit");
    let got = store.limited_get_log_entries(3, 7).await.unwrap();
    assert_eq!(indexes(&got), vec![3, 4, 5, 6], "small ones fill the rest");

    // An entry larger than the whole budget still travels, alone.
    let vfs = SimVfs::new(8);
    let mut store = store_with(&vfs, &sizes, big / 2).await;
    let got = store.limited_get_log_entries(1, 7).await.unwrap();
    assert_eq!(indexes(&got), vec![1]);
    let got = store.limited_get_log_entries(4, 7).await.unwrap();
    assert_eq!(indexes(&got), vec![4, 5, 6]);

    // Without a budget the whole range comes back.
    let mut all = LogStore::new(store.wal().clone());
    let got = all.limited_get_log_entries(1, 7).await.unwrap();
    assert_eq!(indexes(&got), (1..7).collect::<Vec<_>>());
}
