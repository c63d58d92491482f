//! The engine API as a caller uses it: apply, read, flush, reopen, bad input, back-pressure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use qastore_lsm::vfs::{OsVfs, SimVfs};
use qastore_lsm::{Engine, EngineConfig, Error, InvalidArgument, WriteBatch};

fn small() -> EngineConfig {
    let mut o = EngineConfig {
        memtable_bytes: 4 << 10,
        max_immutable_memtables: 2,
        ..EngineConfig::default()
    };
    o.table.block_bytes = 512;
    o
}

fn batch(pairs: &[(&str, Option<&str>)]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in pairs {
        match v {
            Some(v) => b.put(k.to_string(), v.to_string()),
            None => b.delete(k.to_string()),
        };
    }
    b
}

fn get(e: &Engine, k: &str) -> Option<String> {
    e.get(k.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn all(e: &Engine) -> Vec<(String, String)> {
    e.scan(Bound::Unbounded, Bound::Unbounded)
        .map(|r| {
            let (k, v) = r.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn puts_deletes_and_scans_within_a_batch_and_across_batches() {
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", EngineConfig::default()).unwrap();
    e.apply(
        &batch(&[("a", Some("1")), ("b", Some("2")), ("a", Some("3"))]),
        1,
    )
    .unwrap();
    assert_eq!(
        get(&e, "a").as_deref(),
        Some("3"),
        "later op in a batch wins"
    );
    e.apply(&batch(&[("b", None), ("c", Some("4"))]), 2)
        .unwrap();
    assert_eq!(get(&e, "b"), None);
    assert_eq!(
        all(&e),
        vec![("a".into(), "3".into()), ("c".into(), "4".into())]
    );
    let bounded: Vec<_> = e
        .scan(Bound::Excluded(b"a"), Bound::Included(b"c"))
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(bounded, vec![Bytes::from_static(b"c")]);
    e.apply(
        &batch(&[
            ("pre/1", Some("x")),
            ("pre/2", Some("y")),
            ("prf", Some("z")),
        ]),
        3,
    )
    .unwrap();
    assert_eq!(e.scan_prefix(b"pre/").count(), 2);
    assert_eq!(e.applied_index(), 3);
    assert_eq!(e.flushed_index(), 0);
}

#[test]
fn a_read_view_keeps_seeing_one_batch_while_later_ones_are_applied_and_flushed() {
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
    e.apply(&batch(&[("a/1", Some("1")), ("b/1", Some("1"))]), 1)
        .unwrap();
    let view = e.read_view();
    e.apply(
        &batch(&[("a/1", None), ("a/2", Some("2")), ("b/2", Some("2"))]),
        2,
    )
    .unwrap();
    e.flush().unwrap();
    let keys = |it: qastore_lsm::EngineIter| -> Vec<Bytes> { it.map(|r| r.unwrap().0).collect() };
    assert_eq!(view.applied_index(), 1);
    assert_eq!(
        keys(view.scan_prefix(b"a/")),
        vec![Bytes::from_static(b"a/1")]
    );
    assert_eq!(
        keys(view.scan_prefix(b"b/")),
        vec![Bytes::from_static(b"b/1")]
    );
    assert_eq!(keys(e.scan_prefix(b"a/")), vec![Bytes::from_static(b"a/2")]);
}

#[test]
fn only_flushed_batches_survive_a_reopen_and_flushed_index_says_which() {
    let vfs = SimVfs::new(1);
    {
        let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
        for i in 1..=50u64 {
            e.apply(&batch(&[(&format!("k{i:03}"), Some(&format!("v{i}")))]), i)
                .unwrap();
        }
        e.flush().unwrap();
        assert_eq!(e.flushed_index(), 50);
        e.apply(&batch(&[("k001", Some("changed"))]), 51).unwrap();
        // An empty batch (a Raft entry with no records) still counts as applied.
        e.apply(&WriteBatch::new(), 52).unwrap();
        assert_eq!(e.applied_index(), 52);
    }
    let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
    assert_eq!(e.flushed_index(), 50);
    assert_eq!(e.applied_index(), 50);
    assert_eq!(get(&e, "k001").as_deref(), Some("v1"));
    assert_eq!(all(&e).len(), 50);
    e.apply(&WriteBatch::new(), 51).unwrap();
    e.apply(&WriteBatch::new(), 52).unwrap();
    e.flush().unwrap();
    drop(e);
    let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
    assert_eq!(e.flushed_index(), 52, "empty batches are flushed too");
}

#[test]
fn flushed_tables_serve_reads_and_the_bloom_filter_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(OsVfs::shared(), dir.path(), small()).unwrap();
    for i in 1..=400u64 {
        e.apply(&batch(&[(&format!("key{i:05}"), Some(&"x".repeat(40)))]), i)
            .unwrap();
    }
    e.flush().unwrap();
    let stats = e.stats();
    assert!(stats.flushes >= 3, "{stats:?}");
    assert!(!e.tables().is_empty());
    assert_eq!(stats.immutable_memtables, 0);
    for i in 1..=400u64 {
        assert!(e.get(format!("key{i:05}").as_bytes()).unwrap().is_some());
    }
    // Absent keys inside a table's key range are answered by its bloom filter.
    for i in 1..=400u64 {
        assert!(e.get(format!("key{i:05}x").as_bytes()).unwrap().is_none());
    }
    let stats = e.stats();
    assert!(stats.bloom_useful > 350, "{stats:?}");
    assert!(stats.bloom_false_positive < 40, "{stats:?}");
    assert_eq!(all(&e).len(), 400);
    e.verify().unwrap();
    drop(e);
    let e = Engine::open(OsVfs::shared(), dir.path(), small()).unwrap();
    assert_eq!(all(&e).len(), 400);
    assert_eq!(e.flushed_index(), 400);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
    e.apply(&batch(&[("k", Some("v"))]), 5).unwrap();
    let cases: Vec<(WriteBatch, u64, InvalidArgument)> = vec![
        (
            batch(&[("ok", Some("1")), ("", Some("v"))]),
            6,
            InvalidArgument::EmptyKey { position: 1 },
        ),
        (
            {
                let mut b = WriteBatch::new();
                b.put(vec![b'k'; 20_000], "v");
                b
            },
            6,
            InvalidArgument::KeyTooLong {
                position: 0,
                len: 20_000,
                max: 16 << 10,
            },
        ),
        (
            {
                let mut b = WriteBatch::new();
                b.put("k", vec![0u8; (16 << 20) + 1]);
                b
            },
            6,
            InvalidArgument::ValueTooLong {
                position: 0,
                len: (16 << 20) + 1,
                max: 16 << 20,
            },
        ),
        (
            batch(&[("k", Some("v"))]),
            5,
            InvalidArgument::IndexNotIncreasing { index: 5, last: 5 },
        ),
        (
            batch(&[("k", Some("v"))]),
            0,
            InvalidArgument::IndexOutOfRange {
                index: 0,
                max: (1 << 48) - 1,
            },
        ),
        (
            // One key written more often than the ordinals can tell apart.
            (0..70_000).fold(WriteBatch::new(), |mut b, i| {
                b.put("same", format!("{i}"));
                b
            }),
            6,
            InvalidArgument::BatchTooLarge {
                len: 70_000,
                max: 65_536,
            },
        ),
    ];
    for (b, index, want) in cases {
        match e.apply(&b, index) {
            Err(Error::InvalidArgument(got)) => assert_eq!(got, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
    assert_eq!(all(&e), vec![("k".into(), "v".into())]);
    assert_eq!(e.applied_index(), 5);
}

#[test]
fn a_batch_larger_than_the_ordinals_works_when_no_key_repeats_too_often() {
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", EngineConfig::default()).unwrap();
    let mut b = WriteBatch::new();
    for i in 0..100_000 {
        b.put(format!("k{i:06}"), "v1");
    }
    // A later operation on the same key in the same batch still wins.
    b.put("k000007", "v2").delete("k000008");
    e.apply(&b, 1).unwrap();
    assert_eq!(all(&e).len(), 99_999);
    assert_eq!(get(&e, "k000007").as_deref(), Some("v2"));
    assert_eq!(get(&e, "k000008"), None);
    e.flush().unwrap();
    drop(e);
    let e = Engine::open(vfs.shared(), "/db", EngineConfig::default()).unwrap();
    assert_eq!(get(&e, "k000007").as_deref(), Some("v2"));
    assert_eq!(all(&e).len(), 99_999);
}

#[test]
fn readers_never_see_half_a_batch() {
    let vfs = SimVfs::new(1);
    let e = Arc::new(Engine::open(vfs.shared(), "/db", small()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Every batch writes the same counter to both keys.
                let rows: Vec<_> = e
                    .scan(Bound::Unbounded, Bound::Unbounded)
                    .map(|r| r.unwrap().1)
                    .collect();
                if !rows.is_empty() {
                    assert_eq!(rows.len(), 2);
                    assert_eq!(rows[0], rows[1], "a scan saw half a batch");
                }
                checks += 1;
            }
            checks
        })
    };
    for i in 1..=3000u64 {
        let v = format!("{i:08}");
        e.apply(&batch(&[("left", Some(&v)), ("right", Some(&v))]), i)
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert!(e.stats().flushes > 0, "flushes happened while reading");
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_flush_queue_stalls_writes_until_a_flush_finishes() {
    let vfs = SimVfs::new(1);
    // A flush takes at least two fsyncs (table, manifest): 60 ms here.
    vfs.set_sync_latency(Duration::from_millis(30));
    let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
    // Each batch is bigger than a memtable, so each one freezes a memtable.
    let value = "v".repeat(5000);
    let put = |i: u64| e.apply(&batch(&[(&format!("k{i}"), Some(&value))]), i);
    put(1).unwrap();
    put(2).unwrap();
    assert!(e.write_stalled(), "two frozen memtables fill the queue");
    assert_eq!(e.stats().stops, 0);
    e.write_room().await;
    assert!(!e.write_stalled());
    assert!(e.stats().flushes >= 1);
    // Waiting for room is a stop too, counted like one inside apply.
    let stats = e.stats();
    assert_eq!(stats.stops, 1, "{stats:?}");
    assert!(stats.stop_micros > 1000, "{stats:?}");
    put(3).unwrap();
    // The queue is full again: this apply has to wait for a flush.
    put(4).unwrap();
    let stats = e.stats();
    assert!(stats.stops >= 2, "{stats:?}");
    assert!(stats.stop_micros > 1000, "{stats:?}");
    e.flush().unwrap();
    assert_eq!(e.stats().immutable_memtables, 0);
    assert_eq!(all(&e).len(), 4);
}

#[test]
fn a_directory_is_opened_by_one_engine_or_wal_at_a_time() {
    use qastore_lsm::wal::{Wal, WalConfig};
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(OsVfs::shared(), dir.path().join("db"), small()).unwrap();
    match Engine::open(OsVfs::shared(), dir.path().join("db"), small()) {
        Err(Error::Locked { path }) => assert!(path.ends_with("db/LOCK")),
        other => panic!("expected a lock error, got {other:?}"),
    }
    let w = Wal::open(
        OsVfs::shared(),
        dir.path().join("wal"),
        WalConfig::default(),
    )
    .unwrap();
    assert!(matches!(
        Wal::open(
            OsVfs::shared(),
            dir.path().join("wal"),
            WalConfig::default()
        ),
        Err(Error::Locked { .. })
    ));
    drop((e, w));
    Engine::open(OsVfs::shared(), dir.path().join("db"), small()).unwrap();
    Wal::open(
        OsVfs::shared(),
        dir.path().join("wal"),
        WalConfig::default(),
    )
    .unwrap();

    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", small()).unwrap();
    assert!(matches!(
        Engine::open(vfs.shared(), "/db", small()),
        Err(Error::Locked { .. })
    ));
    drop(e);
    Engine::open(vfs.shared(), "/db", small()).unwrap();
}

#[test]
fn options_that_cannot_work_are_refused_at_open() {
    let vfs = SimVfs::new(1);
    let bad = [
        EngineConfig {
            l0_compaction_trigger: 8,
            l0_slowdown_trigger: 4,
            ..EngineConfig::default()
        },
        EngineConfig {
            level_multiplier: 1,
            ..EngineConfig::default()
        },
        EngineConfig {
            memtable_bytes: 0,
            ..EngineConfig::default()
        },
    ];
    for opts in bad {
        match Engine::open(vfs.shared(), "/db", opts) {
            Err(Error::InvalidArgument(InvalidArgument::BadOption { .. })) => {}
            other => panic!("expected a bad option error, got {other:?}"),
        }
    }
}
