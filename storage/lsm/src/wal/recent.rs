//! The newest entries of the log, kept in memory as they were appended: a leader reads back
//! what it has just appended to send it to its followers, and serving that from memory saves a
//! read from the segment file, a buffer and a decode for every entry sent.
//!
//! The entries are contiguous and end at the log's last entry: an append that does not follow
//! the newest one starts afresh, and a truncation drops what it cuts. Older entries leave once
//! the payloads held pass the byte budget; reads of them go to the files as before.

use std::collections::VecDeque;
use std::ops::Range;

use super::entry::WalEntry;

/// Payload bytes kept: a few hundred milliseconds of heavy ingest, enough for every follower
/// that keeps up.
pub(super) const RECENT_BYTES: usize = 8 << 20;

#[derive(Debug)]
pub(super) struct Recent {
    entries: VecDeque<WalEntry>,
    bytes: usize,
    budget: usize,
}

impl Recent {
    pub(super) fn new(budget: usize) -> Recent {
        Recent {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Keeps `appended`, which the log now ends with.
    pub(super) fn push(&mut self, appended: &[WalEntry]) {
        let Some(first) = appended.first() else {
            return;
        };
        if self
            .entries
            .back()
            .is_some_and(|e| e.index + 1 != first.index)
        {
            self.clear();
        }
        for e in appended {
            self.bytes += e.payload.len();
            self.entries.push_back(e.clone());
        }
        while self.bytes > self.budget {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.payload.len();
        }
    }

    /// Drops the entries from index `from` on.
    pub(super) fn truncate_from(&mut self, from: u64) {
        while self.entries.back().is_some_and(|e| e.index >= from) {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= e.payload.len();
            }
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries of `range` (not empty), if every one of them is held.
    pub(super) fn get(&self, range: &Range<u64>) -> Option<Vec<WalEntry>> {
        let front = self.entries.front()?.index;
        let back = self.entries.back()?.index;
        if range.start < front || range.end == 0 || range.end - 1 > back || range.is_empty() {
            return None;
        }
        let from = (range.start - front) as usize;
        let to = (range.end - front) as usize;
        Some(self.entries.range(from..to).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(index: u64, bytes: usize) -> WalEntry {
        WalEntry {
            index,
            term: 1,
            payload: Bytes::from(vec![index as u8; bytes]),
        }
    }

    fn indexes(v: Option<Vec<WalEntry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.index).collect())
    }

    #[test]
    fn only_ranges_wholly_held_are_served() {
        let mut r = Recent::new(1_000);
        r.push(&[entry(5, 10), entry(6, 10)]);
        r.push(&[entry(7, 10)]);
        assert_eq!(indexes(r.get(&(5..8))), Some(vec![5, 6, 7]));
        assert_eq!(indexes(r.get(&(6..7))), Some(vec![6]));
        assert_eq!(r.get(&(4..6)), None);
        assert_eq!(r.get(&(7..9)), None);
        assert_eq!(r.get(&(6..6)), None);
    }

    #[test]
    fn the_budget_drops_the_oldest_and_a_gap_starts_afresh() {
        let mut r = Recent::new(25);
        r.push(&[entry(1, 10), entry(2, 10), entry(3, 10)]);
        assert_eq!(r.get(&(1..2)), None, "over the budget: the oldest left");
        assert_eq!(indexes(r.get(&(2..4))), Some(vec![2, 3]));
        r.push(&[entry(9, 5)]);
        assert_eq!(r.get(&(3..4)), None);
        assert_eq!(indexes(r.get(&(9..10))), Some(vec![9]));
    }

    #[test]
    fn a_truncation_drops_what_it_cuts() {
        let mut r = Recent::new(1_000);
        r.push(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        r.truncate_from(2);
        assert_eq!(r.get(&(1..3)), None);
        r.push(&[entry(2, 7)]);
        let again = r.get(&(2..3)).unwrap();
        assert_eq!(
            again[0].payload.len(),
            7,
            "the new entry 2, not the cut one"
        );
    }
}
