//! Compaction as a user sees it: writers slow down, then stop, while level 0 piles up;
//! obsolete tables live exactly as long as a reader holds them; manual compaction drops
//! overwritten versions and deletes; the stats account for it all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Bound;
use std::time::Duration;

use qastore_lsm::vfs::{SimVfs, Vfs};
use qastore_lsm::{Engine, EngineConfig, WriteBatch};
use support::contents;

fn batch(i: u64, value_len: usize) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(
        format!("key{:05}", i % 500),
        vec![(i % 251) as u8; value_len],
    );
    b
}

/// [`batch`] with two more keys around all the others, so that the level-0 tables of any two
/// flushes overlap (each adds a run a read may have to check).
fn spanning_batch(i: u64, value_len: usize) -> WriteBatch {
    let mut b = batch(i, value_len);
    b.put("a-first", i.to_be_bytes().to_vec());
    b.put("z-last", i.to_be_bytes().to_vec());
    b
}

#[test]
fn writes_slow_down_then_stop_while_level0_piles_up() {
    let vfs = SimVfs::new(1);
    // Slow fsyncs make compaction lag behind flushes.
    vfs.set_sync_latency(Duration::from_millis(15));
    let opts = EngineConfig {
        memtable_bytes: 2 << 10,
        max_immutable_memtables: 8,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 3,
        l0_stop_trigger: 5,
        level1_bytes: 1 << 20,
        max_write_delay: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let e = Engine::open(vfs.shared(), "/db", opts).unwrap();
    let mut max_l0 = 0;
    for i in 1..=120 {
        // Every batch fills a memtable.
        e.apply(&spanning_batch(i, 3000), i).unwrap();
        max_l0 = max_l0.max(e.stats().levels[0].files);
    }
    let stats = e.stats();
    assert!(stats.slowdowns > 0, "{stats:?}");
    assert!(stats.slowdown_micros >= stats.slowdowns * 250, "{stats:?}");
    assert!(stats.stops > 0, "{stats:?}");
    assert!(max_l0 <= 5 + 1, "level 0 stays bounded: {max_l0}");
    e.wait_for_compactions().unwrap();
    assert_eq!(e.stats().write_pressure, qastore_lsm::WritePressure::Normal);
    assert_eq!(contents(&e).len(), 122);
}

#[test]
fn obsolete_tables_live_as_long_as_a_reader_holds_them() {
    let vfs = SimVfs::new(1);
    // Level 0 is never compacted in the background here, so the manual compaction below
    // rewrites every table.
    let opts = EngineConfig {
        memtable_bytes: 4 << 10,
        l0_compaction_trigger: 100,
        l0_slowdown_trigger: 200,
        l0_stop_trigger: 300,
        ..EngineConfig::default()
    };
    let e = Engine::open(vfs.shared(), "/db", opts).unwrap();
    for i in 1..=300 {
        e.apply(&batch(i, 100), i).unwrap();
    }
    e.flush().unwrap();
    let before: Vec<String> = e.tables().iter().map(|t| t.file_name()).collect();
    assert!(before.len() > 1);
    assert!(e.tables().iter().all(|t| t.level == 0));
    let mut reader = e.scan(Bound::Unbounded, Bound::Unbounded);
    let first = reader.next().unwrap().unwrap();
    e.compact_all().unwrap();
    let after: Vec<String> = e.tables().iter().map(|t| t.file_name()).collect();
    assert!(
        before.iter().all(|n| !after.contains(n)),
        "every table was rewritten"
    );
    for n in &before {
        let path = std::path::Path::new("/db").join(n);
        assert!(vfs.exists(&path).unwrap(), "{n} deleted under a reader");
    }
    // The reader still sees its snapshot, whole.
    let mut rest = 0;
    for row in reader {
        row.unwrap();
        rest += 1;
    }
    assert_eq!(1 + rest, 300);
    assert_eq!(&first.0[..], b"key00001");
    for n in &before {
        let path = std::path::Path::new("/db").join(n);
        assert!(!vfs.exists(&path).unwrap(), "{n} outlived its last reader");
    }
}

#[test]
fn manual_compaction_drops_overwritten_versions_and_deletes() {
    let vfs = SimVfs::new(1);
    let opts = EngineConfig {
        memtable_bytes: 8 << 10,
        ..EngineConfig::default()
    };
    let e = Engine::open(vfs.shared(), "/db", opts).unwrap();
    let mut index = 0;
    for round in 0..5 {
        for k in 0..200 {
            index += 1;
            let mut b = WriteBatch::new();
            b.put(format!("key{k:04}"), format!("round {round}"));
            e.apply(&b, index).unwrap();
        }
        e.flush().unwrap();
    }
    for k in 0..100 {
        index += 1;
        let mut b = WriteBatch::new();
        b.delete(format!("key{k:04}"));
        e.apply(&b, index).unwrap();
    }
    e.compact_all().unwrap();
    let tables = e.tables();
    let entries: u64 = tables.iter().map(|t| t.entries).sum();
    assert_eq!(
        entries, 100,
        "one version per live key, no tombstones: {tables:?}"
    );
    let stats = e.stats();
    assert!(stats.compaction_bytes_read > stats.compaction_bytes_written);
    assert!(stats.write_amplification > 1.0, "{stats:?}");
    assert!(stats.levels.iter().map(|l| l.files).sum::<usize>() == tables.len());
    let rows = contents(&e);
    assert_eq!(rows.len(), 100);
    assert!(rows.values().all(|v| v == b"round 4"));
}

/// An event log appended in key order beside a small set of keys overwritten all the time,
/// in `batches` batches; returns the engine's stats and tables once compaction is done.
fn log_and_latest_states(prefix: usize) -> (qastore_lsm::EngineStats, Vec<qastore_lsm::TableInfo>) {
    let vfs = SimVfs::new(7);
    let opts = EngineConfig {
        memtable_bytes: 32 << 10,
        level1_bytes: 128 << 10,
        target_file_bytes: 32 << 10,
        table_partition_prefix: prefix,
        ..EngineConfig::default()
    };
    let e = Engine::open(vfs.shared(), "/db", opts).unwrap();
    let mut model = std::collections::BTreeMap::new();
    for index in 1..=1500u64 {
        let mut b = WriteBatch::new();
        for i in 0..4u64 {
            let event = (format!("e{index:08}{i}"), vec![(index % 251) as u8; 120]);
            let state = (
                format!("a{:03}", (index * 7 + i) % 50),
                index.to_be_bytes().to_vec(),
            );
            for (k, v) in [event, state] {
                b.put(k.clone(), v.clone());
                model.insert(k.into_bytes(), v);
            }
        }
        e.apply(&b, index).unwrap();
    }
    e.flush().unwrap();
    e.wait_for_compactions().unwrap();
    assert_eq!(contents(&e), model, "prefix {prefix}");
    e.verify().unwrap();
    (e.stats(), e.tables())
}

#[test]
fn a_log_written_in_key_order_moves_down_whole_when_tables_are_partitioned() {
    let (plain, _) = log_and_latest_states(0);
    let (parted, tables) = log_and_latest_states(1);
    // Below level 0, tables of a level are sorted and disjoint, and none mixes partitions.
    for level in 1..7 {
        let files: Vec<_> = tables.iter().filter(|t| t.level == level).collect();
        for pair in files.windows(2) {
            assert!(pair[0].largest_key < pair[1].smallest_key, "{files:?}");
        }
    }
    assert!(
        tables.iter().all(|t| t.smallest_key[0] == t.largest_key[0]),
        "{tables:?}"
    );
    assert!(parted.trivial_moves > 0, "{parted:?}");
    // The log is written by its flushes and moved down; only the overwritten keys (a small
    // share of the bytes) are merged again and again.
    assert!(
        parted.compaction_bytes_written * 2 < plain.compaction_bytes_written,
        "partitioned {} against {} bytes rewritten",
        parted.compaction_bytes_written,
        plain.compaction_bytes_written
    );
}
