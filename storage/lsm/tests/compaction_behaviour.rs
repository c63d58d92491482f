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
        e.apply(&batch(i, 3000), i).unwrap();
        max_l0 = max_l0.max(e.stats().levels[0].files);
    }
    let stats = e.stats();
    assert!(stats.slowdowns > 0, "{stats:?}");
    assert!(stats.slowdown_micros >= stats.slowdowns * 250, "{stats:?}");
    assert!(stats.stops > 0, "{stats:?}");
    assert!(max_l0 <= 5 + 1, "level 0 stays bounded: {max_l0}");
    e.wait_for_compactions().unwrap();
    assert_eq!(e.stats().write_pressure, qastore_lsm::WritePressure::Normal);
    assert_eq!(contents(&e).len(), 120);
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
