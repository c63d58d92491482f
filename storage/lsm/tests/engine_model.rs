//! The engine against a `BTreeMap` model: random batches of puts and deletes, point reads,
//! range scans, flushes, compactions and reopens. Memtables, tables and levels are tiny, so
//! background compactions run all the time and several levels appear. After a reopen only
//! flushed batches are there, and the test re-applies the rest from its own record of batches,
//! the way Raft re-applies its log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Bound;

use proptest::prelude::*;
use qastore_lsm::vfs::SimVfs;
use qastore_lsm::{Engine, EngineConfig, WriteBatch};

/// Tables of each level below 0 are sorted and do not overlap, and no table mixes partitions.
fn check_levels(engine: &Engine) {
    let tables = engine.tables();
    for t in &tables {
        assert_eq!(t.smallest_key[0], t.largest_key[0], "{t:?}");
    }
    for level in 1..7 {
        let files: Vec<_> = tables.iter().filter(|t| t.level == level).collect();
        for pair in files.windows(2) {
            assert!(
                pair[0].largest_key < pair[1].smallest_key,
                "level {level} overlaps: {:?} / {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

use support::{contents, State as Model};
/// One batch: (key id, value or delete).
type Ops = Vec<(u8, Option<Vec<u8>>)>;

#[derive(Debug, Clone)]
enum Op {
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Scan(u8, u8, bool),
    Flush,
    Reopen,
    CompactAll,
    WaitForCompactions,
}

fn key(k: u8) -> Vec<u8> {
    // Shared prefixes exercise prefix compression; varied lengths exercise ordering; the first
    // letter puts keys in three table partitions (level-0 tables of one partition that overlap
    // nothing are moved down whole, the rest merged around them).
    let space = ["a", "e", "u"][usize::from(k % 3)];
    format!("{space}/{:02}/{}", k % 40, "o".repeat(usize::from(k % 3))).into_bytes()
}

fn op() -> impl Strategy<Value = Op> {
    let write = (
        any::<u8>(),
        proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..120)),
    );
    prop_oneof![
        8 => proptest::collection::vec(write, 0..12).prop_map(Op::Batch),
        3 => any::<u8>().prop_map(Op::Get),
        2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(a, b, i)| Op::Scan(a, b, i)),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::CompactAll),
        1 => Just(Op::WaitForCompactions),
    ]
}

fn options() -> EngineConfig {
    let mut o = EngineConfig {
        memtable_bytes: 1500,
        max_immutable_memtables: 2,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 6,
        l0_stop_trigger: 10,
        level1_bytes: 3000,
        level_multiplier: 3,
        target_file_bytes: 1200,
        table_partition_prefix: 1,
        max_write_delay: std::time::Duration::from_micros(200),
        ..EngineConfig::default()
    };
    o.table.block_bytes = 200;
    o.table.restart_interval = 3;
    o
}

fn to_batch(ops: &[(u8, Option<Vec<u8>>)]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in ops {
        match v {
            Some(v) => b.put(key(*k), v.clone()),
            None => b.delete(key(*k)),
        };
    }
    b
}

fn model_at(batches: &[Ops], upto: usize) -> Model {
    let mut m = Model::new();
    for ops in &batches[..upto] {
        for (k, v) in ops {
            match v {
                Some(v) => m.insert(key(*k), v.clone()),
                None => m.remove(&key(*k)),
            };
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap(ops in proptest::collection::vec(op(), 1..80)) {
        let vfs = SimVfs::new(0);
        let mut engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
        let mut batches: Vec<Ops> = Vec::new();
        let mut model = Model::new();
        let mut flushed_at_least = 0u64;
        for op in ops {
            match op {
                Op::Batch(w) => {
                    batches.push(w.clone());
                    engine.apply(&to_batch(&w), batches.len() as u64).unwrap();
                    for (k, v) in w {
                        match v {
                            Some(v) => model.insert(key(k), v),
                            None => model.remove(&key(k)),
                        };
                    }
                }
                Op::Get(k) => {
                    let got = engine.get(&key(k)).unwrap().map(|b| b.to_vec());
                    prop_assert_eq!(got.as_ref(), model.get(&key(k)));
                }
                Op::Scan(a, b, inclusive) => {
                    let (lo, hi) = { let (x, y) = (key(a), key(b)); if x <= y { (x, y) } else { (y, x) } };
                    let upper = if inclusive { Bound::Included(&hi[..]) } else { Bound::Excluded(&hi[..]) };
                    let got: Vec<_> = engine
                        .scan(Bound::Included(&lo[..]), upper)
                        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
                        .collect();
                    let want: Vec<_> = model
                        .range::<Vec<u8>, _>((Bound::Included(lo.clone()), upper.map(<[u8]>::to_vec)))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    prop_assert_eq!(got, want);
                }
                Op::Flush => {
                    engine.flush().unwrap();
                    flushed_at_least = batches.len() as u64;
                    prop_assert_eq!(engine.flushed_index(), flushed_at_least);
                }
                Op::CompactAll => {
                    engine.compact_all().unwrap();
                    flushed_at_least = batches.len() as u64;
                    let tables = engine.tables();
                    let deepest = tables.iter().map(|t| t.level).max().unwrap_or(0);
                    prop_assert!(tables.iter().all(|t| t.level == deepest), "{tables:?}");
                    check_levels(&engine);
                }
                Op::WaitForCompactions => {
                    engine.wait_for_compactions().unwrap();
                    check_levels(&engine);
                }
                Op::Reopen => {
                    drop(engine);
                    engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
                    let flushed = engine.flushed_index();
                    prop_assert!(flushed >= flushed_at_least);
                    prop_assert!(flushed <= batches.len() as u64);
                    prop_assert_eq!(contents(&engine), model_at(&batches, flushed as usize));
                    for (i, ops) in batches.iter().enumerate().skip(flushed as usize) {
                        engine.apply(&to_batch(ops), i as u64 + 1).unwrap();
                    }
                }
            }
        }
        prop_assert_eq!(contents(&engine), model);
        engine.verify().unwrap();
        check_levels(&engine);
    }

    /// Enough writes that data reaches level 3 and beyond, then a full read-back. Beside the
    /// random keys, a log appended in key order (its tables are moved down whole).
    #[test]
    fn deep_trees_match_the_model(seed in any::<u64>()) {
        let vfs = SimVfs::new(seed);
        let engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
        let mut model = Model::new();
        let mut x = seed | 1;
        for index in 1..=600u64 {
            let mut ops = Vec::new();
            for _ in 0..4 {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let k = (x % 251) as u8;
                let v = (x % 5 != 0).then(|| vec![(x >> 8) as u8; (x % 60) as usize]);
                ops.push((k, v));
            }
            let mut batch = to_batch(&ops);
            let log = (format!("l/{index:06}").into_bytes(), vec![(x >> 16) as u8; 40]);
            batch.put(log.0.clone(), log.1.clone());
            engine.apply(&batch, index).unwrap();
            for (k, v) in ops {
                match v { Some(v) => model.insert(key(k), v), None => model.remove(&key(k)) };
            }
            model.insert(log.0, log.1);
        }
        engine.wait_for_compactions().unwrap();
        let stats = engine.stats();
        prop_assert!(stats.compactions > 0, "{stats:?}");
        prop_assert!(stats.trivial_moves > 0, "{stats:?}");
        prop_assert!(engine.tables().iter().any(|t| t.level >= 2), "{:?}", engine.tables());
        check_levels(&engine);
        prop_assert_eq!(contents(&engine), model.clone());
        for k in 0..=255u8 {
            prop_assert_eq!(engine.get(&key(k)).unwrap().map(|b| b.to_vec()), model.get(&key(k)).cloned());
        }
    }
}
