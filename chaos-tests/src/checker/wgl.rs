//! A linearizability checker for one read/write register, in the style of Wing & Gong with
//! Lowe's memoization: search for an order of the operations, consistent with real time, in
//! which every read returns the latest write; remember (set of linearized operations, value)
//! pairs already explored. Writes of unknown outcome may take effect at any time after their
//! invocation, or never. A search that exceeds its budget answers `Unknown`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::history::{Nanos, INFINITY};

/// One operation on the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegOp {
    /// Invocation time.
    pub invoke: Nanos,
    /// Completion time ([`INFINITY`]: unknown outcome).
    pub complete: Nanos,
    /// `Some(v)`: a write of `v`; `None`: a read...
    pub write: Option<u64>,
    /// ...that returned this value (0: never written).
    pub read: u64,
}

/// The verdict on one register's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid order exists.
    Linearizable,
    /// None exists.
    NotLinearizable,
    /// The search ran out of time.
    Unknown,
}

/// Checks one register's operations, starting from value 0, within `budget`.
pub fn check(ops: &[RegOp], budget: Duration) -> Verdict {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let started = Instant::now();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| ops[i].invoke);
    let ops: Vec<RegOp> = order.iter().map(|&i| ops[i]).collect();
    // Unknown writes may never happen: they need not be linearized.
    let required: Vec<bool> = ops
        .iter()
        .map(|o| o.complete != INFINITY || o.write.is_none())
        .collect();
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, u64)> = HashSet::new();
    let mut stack: Vec<(usize, u64)> = Vec::new(); // (op linearized, value before it)
    let mut value = 0u64;
    let mut next_candidate = 0usize;
    let is_done = |done: &[u64], i: usize| done[i / 64] >> (i % 64) & 1 == 1;
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps.is_multiple_of(4096) && started.elapsed() > budget {
            return Verdict::Unknown;
        }
        if (0..n).all(|i| !required[i] || is_done(&done, i)) {
            return Verdict::Linearizable;
        }
        // The earliest completion among pending required ops bounds what may go next.
        let horizon = (0..n)
            .filter(|&i| !is_done(&done, i) && required[i])
            .map(|i| ops[i].complete)
            .min()
            .unwrap_or(INFINITY);
        let mut advanced = false;
        let mut i = next_candidate;
        while i < n {
            if ops[i].invoke > horizon {
                break;
            }
            if !is_done(&done, i) {
                let o = ops[i];
                let ok = match o.write {
                    Some(_) => true,
                    None => o.read == value,
                };
                if ok {
                    let new_value = o.write.unwrap_or(value);
                    done[i / 64] |= 1 << (i % 64);
                    if seen.insert((done.clone(), new_value)) {
                        stack.push((i, value));
                        value = new_value;
                        next_candidate = 0;
                        advanced = true;
                        break;
                    }
                    done[i / 64] &= !(1 << (i % 64));
                }
            }
            i += 1;
        }
        if advanced {
            continue;
        }
        // Backtrack.
        let Some((last, before)) = stack.pop() else {
            return Verdict::NotLinearizable;
        };
        done[last / 64] &= !(1 << (last % 64));
        value = before;
        next_candidate = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(invoke: Nanos, complete: Nanos, v: u64) -> RegOp {
        RegOp {
            invoke,
            complete,
            write: Some(v),
            read: 0,
        }
    }
    fn r(invoke: Nanos, complete: Nanos, v: u64) -> RegOp {
        RegOp {
            invoke,
            complete,
            write: None,
            read: v,
        }
    }
    const B: Duration = Duration::from_secs(5);

    #[test]
    fn sequential_and_concurrent_histories_are_linearizable() {
        assert_eq!(
            check(&[w(0, 10, 1), r(20, 30, 1), w(40, 50, 2), r(60, 70, 2)], B),
            Verdict::Linearizable
        );
        // A read overlapping a write may see either value.
        assert_eq!(
            check(&[w(0, 100, 1), r(10, 20, 0), r(30, 40, 1)], B),
            Verdict::Linearizable
        );
        // An unknown write may have happened...
        assert_eq!(
            check(&[w(0, INFINITY, 7), r(50, 60, 7)], B),
            Verdict::Linearizable
        );
        // ...or not.
        assert_eq!(
            check(&[w(0, INFINITY, 7), r(50, 60, 0)], B),
            Verdict::Linearizable
        );
    }

    #[test]
    fn a_stale_read_is_caught() {
        assert_eq!(
            check(&[w(0, 10, 1), w(20, 30, 2), r(40, 50, 1)], B),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn a_lost_write_is_caught() {
        assert_eq!(
            check(&[w(0, 10, 1), r(20, 30, 0)], B),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn a_read_from_the_future_is_caught() {
        assert_eq!(
            check(&[r(0, 10, 5), w(20, 30, 5)], B),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn a_value_read_after_being_overwritten_and_read_is_caught() {
        // 1 then 2 are written; a reader sees 2 then 1 again: time went backwards.
        assert_eq!(
            check(&[w(0, 10, 1), w(0, 100, 2), r(20, 30, 2), r(40, 50, 1)], B),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn many_concurrent_operations_are_checked_quickly() {
        let mut ops = Vec::new();
        for i in 0..200u64 {
            ops.push(w(i * 10, i * 10 + 25, i + 1));
            ops.push(r(i * 10 + 26, i * 10 + 30, i + 1));
        }
        let t = Instant::now();
        assert_eq!(check(&ops, B), Verdict::Linearizable);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
