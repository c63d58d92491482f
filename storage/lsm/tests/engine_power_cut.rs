//! Power cuts at random points of applies, flushes, compactions, manifest edits and reopens:
//! after the restart the engine holds exactly the batches up to its flushed index (at least as
//! far as any flush that returned), nothing of later batches, every file it lists reads back
//! intact, and no file it does not list is left in its directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use qastore_lsm::vfs::SimVfs;
use qastore_lsm::{Engine, EngineConfig, WriteBatch};
use support::{contents, Op, State};

fn options() -> EngineConfig {
    let mut o = EngineConfig {
        memtable_bytes: 2000,
        max_immutable_memtables: 2,
        max_manifest_bytes: 600,
        l0_compaction_trigger: 2,
        level1_bytes: 4000,
        level_multiplier: 3,
        target_file_bytes: 1500,
        max_write_delay: std::time::Duration::from_micros(100),
        ..EngineConfig::default()
    };
    o.table.block_bytes = 256;
    o
}

/// Batch `i` of the workload (deterministic, so the model can be rebuilt from the index).
fn batch(i: u64) -> Vec<Op> {
    let mut ops = vec![(
        format!("k{:03}", i % 53),
        Some(format!("v{i}-{}", "x".repeat((i % 40) as usize))),
    )];
    if i.is_multiple_of(4) {
        ops.push((format!("k{:03}", (i * 7) % 53), None));
    }
    ops.push((format!("seq{:04}", i), Some(i.to_string())));
    ops
}

fn write_batch(i: u64) -> WriteBatch {
    support::write_batch(&batch(i))
}

fn model(upto: u64) -> State {
    support::model((1..=upto).map(batch))
}

/// Every table file in the directory is live, and nothing unfinished is left. (Waits for the
/// compactions the open may have started, so it looks at a quiet directory.)
fn no_orphans(vfs: &SimVfs, engine: &Engine) {
    use qastore_lsm::vfs::Vfs;
    engine.wait_for_compactions().unwrap();
    let live: Vec<String> = engine.tables().iter().map(|t| t.file_name()).collect();
    for name in vfs.list("/db".as_ref()).unwrap() {
        assert!(!name.ends_with(".tmp"), "left over: {name}");
        if name.ends_with(".sst") {
            assert!(live.contains(&name), "orphan table {name}");
        }
    }
}

/// Opens the engine, surviving power cuts during the open itself.
fn reopen(vfs: &SimVfs) -> Engine {
    loop {
        match Engine::open(vfs.shared(), "/db", options()) {
            Ok(e) => return e,
            Err(_) if vfs.is_halted() => vfs.restart(),
            Err(e) => panic!("reopen failed without a power cut: {e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn power_cut_keeps_exactly_the_flushed_batches(
        batches in 5u64..120,
        flush_every in 3u64..25,
        crash_at in 1u64..300,
        crash_on_reopen in proptest::option::of(1u64..12),
        mode in support::power_cut_mode(),
        seed: u64,
    ) {
        let vfs = SimVfs::new(seed);
        let engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
        vfs.crash_after_ops(crash_at, mode);
        let mut durable = 0;
        for i in 1..=batches {
            if engine.apply(&write_batch(i), i).is_err() {
                break;
            }
            if i.is_multiple_of(flush_every) {
                match engine.flush() {
                    Ok(()) => durable = i,
                    Err(_) => break,
                }
            }
        }
        if !vfs.is_halted() {
            vfs.power_cut(mode);
        }
        drop(engine);
        vfs.restart();
        if let Some(n) = crash_on_reopen {
            vfs.crash_after_ops(n, mode);
        }
        let engine = reopen(&vfs);
        let flushed = engine.flushed_index();
        prop_assert!(flushed >= durable, "flush reported {durable} durable, reopened at {flushed}");
        prop_assert!(flushed <= batches);
        prop_assert_eq!(contents(&engine), model(flushed));
        engine.verify().unwrap();
        no_orphans(&vfs, &engine);
        // Re-applying the rest, as Raft would, reaches the full state.
        for i in flushed + 1..=batches {
            engine.apply(&write_batch(i), i).unwrap();
        }
        prop_assert_eq!(contents(&engine), model(batches));
        engine.wait_for_compactions().unwrap();
        drop(engine);
        let engine = reopen(&vfs);
        prop_assert_eq!(contents(&engine), model(engine.flushed_index()));
        no_orphans(&vfs, &engine);
    }

    /// Cuts the power in the middle of a manual compaction of a tree several levels deep.
    #[test]
    fn power_cut_during_compaction_loses_nothing(
        crash_at in 1u64..200,
        mode in support::power_cut_mode(),
        seed: u64,
    ) {
        let vfs = SimVfs::new(seed);
        let engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
        for i in 1..=150 {
            engine.apply(&write_batch(i), i).unwrap();
        }
        engine.flush().unwrap();
        vfs.crash_after_ops(crash_at, mode);
        let _ = engine.compact_all();
        if !vfs.is_halted() {
            vfs.power_cut(mode);
        }
        drop(engine);
        vfs.restart();
        let engine = reopen(&vfs);
        prop_assert_eq!(engine.flushed_index(), 150);
        prop_assert_eq!(contents(&engine), model(150));
        engine.verify().unwrap();
        no_orphans(&vfs, &engine);
    }
}
