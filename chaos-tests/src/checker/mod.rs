//! Checks over a run's history: linearizability of writes and `LINEARIZABLE` reads per
//! register (a Wing & Gong search), and `LOCAL`/`BOUNDED` reads against the state at the
//! applied index they report. (Reading everything back, exactly-once and convergence need the cluster: see
//! [`crate::run()`].)

mod wgl;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::history::{Event, Op, Outcome, ReadKind};
use wgl::{RegOp, Verdict};

/// What the history checks found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryCheck {
    /// Registers checked.
    pub keys: usize,
    /// Registers with no linearization.
    pub not_linearizable: Vec<u32>,
    /// Registers whose search ran out of time (counted as failures).
    pub unknown: Vec<u32>,
    /// `LOCAL`/`BOUNDED` reads inconsistent with the applied index they report.
    pub bad_local_reads: Vec<String>,
}

impl HistoryCheck {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.not_linearizable.is_empty()
            && self.unknown.is_empty()
            && self.bad_local_reads.is_empty()
    }
}

/// Checks `events`, giving each register's search `budget`.
pub fn check_history(events: &[Event], budget: Duration) -> HistoryCheck {
    let mut per_key: BTreeMap<u32, Vec<RegOp>> = BTreeMap::new();
    // Acknowledged writes by key: (log index, value); values of unknown writes.
    let mut acked: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    let mut maybe: HashSet<u64> = HashSet::new();
    for e in events {
        match (&e.op, &e.outcome) {
            (Op::Write { key, value }, Outcome::Ok { index, .. }) => {
                per_key.entry(*key).or_default().push(RegOp {
                    invoke: e.invoke,
                    complete: e.complete,
                    write: Some(*value),
                    read: 0,
                });
                acked.entry(*key).or_default().push((*index, *value));
            }
            (Op::Write { key, value }, Outcome::Unknown(_)) => {
                per_key.entry(*key).or_default().push(RegOp {
                    invoke: e.invoke,
                    complete: e.complete,
                    write: Some(*value),
                    read: 0,
                });
                maybe.insert(*value);
            }
            (
                Op::Read {
                    key,
                    kind: ReadKind::Linearizable,
                    ..
                },
                Outcome::Ok { value: Some(v), .. },
            ) => {
                per_key.entry(*key).or_default().push(RegOp {
                    invoke: e.invoke,
                    complete: e.complete,
                    write: None,
                    read: *v,
                });
            }
            _ => {}
        }
    }
    let mut out = HistoryCheck {
        keys: per_key.len(),
        ..Default::default()
    };
    for (key, ops) in &per_key {
        match wgl::check(ops, budget) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => out.not_linearizable.push(*key),
            Verdict::Unknown => out.unknown.push(*key),
        }
    }
    for e in events {
        let (
            Op::Read { key, node, kind },
            Outcome::Ok {
                index: applied,
                value: Some(v),
                from,
            },
        ) = (&e.op, &e.outcome)
        else {
            continue;
        };
        if *kind == ReadKind::Linearizable {
            continue;
        }
        // The read saw the state as of some index in from..=applied: the latest write at or
        // before `from`, or any write between the two.
        let writes = acked.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let floor = (*from).min(*applied);
        let latest = writes
            .iter()
            .filter(|(i, _)| *i <= floor)
            .max_by_key(|(i, _)| *i);
        let ok = if *v == 0 {
            latest.is_none()
        } else if let Some((i, _)) = writes.iter().find(|(_, val)| val == v) {
            *i <= *applied && (*i > floor || latest.is_none_or(|(li, _)| li == i))
        } else {
            // A write of unknown outcome: it happened, somewhere we cannot place.
            maybe.contains(v)
        };
        if !ok {
            out.bad_local_reads.push(format!(
                "{kind:?} read of key {key} on node {node} at applied index {from}..={applied} returned {v}; latest acknowledged write by {from}: {latest:?}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::INFINITY;

    fn write(key: u32, value: u64, invoke: u64, complete: u64, index: u64) -> Event {
        Event {
            process: 0,
            op: Op::Write { key, value },
            invoke,
            complete,
            outcome: Outcome::Ok {
                index,
                value: None,
                from: 0,
            },
        }
    }
    fn read(key: u32, kind: ReadKind, invoke: u64, complete: u64, applied: u64, v: u64) -> Event {
        Event {
            process: 1,
            op: Op::Read { key, node: 2, kind },
            invoke,
            complete,
            outcome: Outcome::Ok {
                index: applied,
                value: Some(v),
                from: applied,
            },
        }
    }
    const B: Duration = Duration::from_secs(5);

    #[test]
    fn a_clean_history_passes() {
        let h = vec![
            write(1, 10, 0, 5, 3),
            read(1, ReadKind::Linearizable, 6, 8, 3, 10),
            read(1, ReadKind::Local, 6, 8, 2, 0),
            read(1, ReadKind::Bounded, 6, 8, 4, 10),
        ];
        assert!(check_history(&h, B).ok());
    }

    #[test]
    fn stale_and_future_local_reads_are_caught() {
        let h = vec![
            write(1, 10, 0, 5, 3),
            write(1, 11, 6, 9, 7),
            read(1, ReadKind::Local, 10, 12, 8, 10),
        ];
        let c = check_history(&h, B);
        assert_eq!(c.bad_local_reads.len(), 1, "{c:?}");
        let h = vec![
            write(1, 10, 0, 5, 3),
            read(1, ReadKind::Bounded, 1, 2, 2, 10),
        ];
        assert_eq!(check_history(&h, B).bad_local_reads.len(), 1);
    }

    #[test]
    fn a_lost_write_and_a_stale_linearizable_read_are_caught() {
        let h = vec![
            write(1, 10, 0, 5, 3),
            read(1, ReadKind::Linearizable, 6, 8, 3, 0),
        ];
        assert_eq!(check_history(&h, B).not_linearizable, vec![1]);
        let h = vec![
            write(2, 10, 0, 5, 3),
            write(2, 11, 6, 9, 4),
            read(2, ReadKind::Linearizable, 10, 12, 4, 10),
        ];
        assert_eq!(check_history(&h, B).not_linearizable, vec![2]);
    }

    #[test]
    fn an_unknown_write_may_or_may_not_be_seen() {
        let unknown = Event {
            process: 0,
            op: Op::Write { key: 1, value: 9 },
            invoke: 0,
            complete: INFINITY,
            outcome: Outcome::Unknown("timeout".into()),
        };
        let h = vec![
            unknown.clone(),
            read(1, ReadKind::Linearizable, 10, 12, 5, 9),
            read(1, ReadKind::Local, 10, 12, 5, 9),
        ];
        assert!(check_history(&h, B).ok());
        let h = vec![unknown, read(1, ReadKind::Linearizable, 10, 12, 5, 0)];
        assert!(check_history(&h, B).ok());
    }
}
