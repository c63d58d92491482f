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
///
/// The search state is the set of operations linearized so far and the register's value; it
/// is remembered by a 128-bit fingerprint (a random 64-bit word per operation, XORed in and
/// out, plus the value). Operations are sorted by invocation, so candidates for the next
/// linearization point are the required operations from the first one not yet linearized up
/// to the earliest pending completion, plus the few writes of unknown outcome.
pub fn check(ops: &[RegOp], budget: Duration) -> Verdict {
    use std::collections::BTreeSet;
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let started = Instant::now();
    let mut ops = ops.to_vec();
    ops.sort_by_key(|o| o.invoke);
    // Unknown writes may never happen: they need not be linearized.
    let optional: Vec<usize> = (0..n)
        .filter(|&i| ops[i].complete == INFINITY && ops[i].write.is_some())
        .collect();
    let is_optional: Vec<bool> = (0..n)
        .map(|i| ops[i].complete == INFINITY && ops[i].write.is_some())
        .collect();
    let required_total = n - optional.len();
    // Deterministic per-operation words for the fingerprint.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let words: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    let mut done = vec![false; n];
    let mut pending: BTreeSet<(Nanos, usize)> = (0..n)
        .filter(|&i| !is_optional[i])
        .map(|i| (ops[i].complete, i))
        .collect();
    let mut first_undone = 0usize; // first required operation not linearized
    let mut required_done = 0usize;
    let mut fingerprint = 0u64;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    // (operation, value before it, candidate position it was chosen at)
    let mut stack: Vec<(usize, u64, usize)> = Vec::new();
    let mut value = 0u64;
    // Candidates are tried in this order: optional ones (by list position), then required
    // ones by index; `resume` is where to continue after a backtrack.
    let mut resume = 0usize;
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps.is_multiple_of(1024) && started.elapsed() > budget {
            return Verdict::Unknown;
        }
        if required_done == required_total {
            return Verdict::Linearizable;
        }
        while first_undone < n && (done[first_undone] || is_optional[first_undone]) {
            first_undone += 1;
        }
        let horizon = pending.first().map_or(INFINITY, |(c, _)| *c);
        // Candidate positions: 0..optional.len() are optional ops, then required from
        // first_undone on.
        let mut chosen = None;
        let mut pos = resume;
        loop {
            let i = if pos < optional.len() {
                optional[pos]
            } else {
                let j = first_undone + (pos - optional.len());
                if j >= n || ops[j].invoke > horizon {
                    break;
                }
                j
            };
            pos += 1;
            if done[i] || ops[i].invoke > horizon {
                continue;
            }
            let o = ops[i];
            if o.write.is_none() && o.read != value {
                continue;
            }
            let new_value = o.write.unwrap_or(value);
            if seen.insert((fingerprint ^ words[i], new_value)) {
                chosen = Some((i, pos - 1));
                break;
            }
        }
        match chosen {
            Some((i, at)) => {
                done[i] = true;
                fingerprint ^= words[i];
                if !is_optional[i] {
                    pending.remove(&(ops[i].complete, i));
                    required_done += 1;
                }
                stack.push((i, value, at));
                value = ops[i].write.unwrap_or(value);
                resume = 0;
            }
            None => {
                let Some((i, before, at)) = stack.pop() else {
                    return Verdict::NotLinearizable;
                };
                done[i] = false;
                fingerprint ^= words[i];
                if !is_optional[i] {
                    pending.insert((ops[i].complete, i));
                    required_done -= 1;
                    first_undone = first_undone.min(i);
                }
                value = before;
                // Continue with the candidate after the one undone, at the position it had in
                // the list of the (restored) state it was chosen in.
                resume = at + 1;
            }
        }
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
    fn a_long_history_with_unknown_writes_is_checked_quickly() {
        let mut ops = Vec::new();
        for i in 0..20_000u64 {
            let t = i * 100;
            ops.push(w(t, t + 60, i + 1));
            ops.push(r(t + 30, t + 90, i + 1));
            ops.push(r(t + 20, t + 50, if i == 0 { 0 } else { i }));
            if i % 1000 == 0 {
                ops.push(w(t + 1, INFINITY, 1_000_000 + i));
            }
        }
        let t = Instant::now();
        assert_eq!(check(&ops, Duration::from_secs(20)), Verdict::Linearizable);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
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
