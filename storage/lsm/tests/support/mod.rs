//! Helpers shared by the engine's integration tests: batches described as plain data, the
//! model state they produce, and the engine's full contents for comparison.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use qastore_lsm::vfs::PowerCut;
use qastore_lsm::{Engine, WriteBatch};

/// One operation: put `Some(value)` or delete (`None`).
pub type Op = (String, Option<String>);

/// Key/value state, as a model or as read back from an engine.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// The write batch for a list of operations.
pub fn write_batch(ops: &[Op]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in ops {
        match v {
            Some(v) => b.put(k.clone(), v.clone()),
            None => b.delete(k.clone()),
        };
    }
    b
}

/// The state after applying `batches` in order to an empty store.
pub fn model(batches: impl IntoIterator<Item = Vec<Op>>) -> State {
    let mut m = State::new();
    for ops in batches {
        for (k, v) in ops {
            match v {
                Some(v) => m.insert(k.into_bytes(), v.into_bytes()),
                None => m.remove(k.as_bytes()),
            };
        }
    }
    m
}

/// Everything the engine holds, read through a full scan.
pub fn contents(e: &Engine) -> State {
    e.scan(Bound::Unbounded, Bound::Unbounded)
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

/// Any of the ways a power cut can treat unsynced bytes.
pub fn power_cut_mode() -> impl Strategy<Value = PowerCut> {
    prop_oneof![
        Just(PowerCut::DropUnsynced),
        Just(PowerCut::KeepRandomPrefix),
        Just(PowerCut::ZeroFillTail)
    ]
}
