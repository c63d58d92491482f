//! What one subscriber received: how many events, their write-to-delivery latencies, and (for
//! resume trials) every sequence number, so that gaps and duplicates can be counted.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::stamp::{now_ns, Stamp};
use crate::Latencies;

#[derive(Default)]
struct State {
    events: u64,
    latency: Latencies,
    seqs: Vec<u64>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// Watching for the first event with a sequence number at or above this.
    mark: Option<u64>,
    marked_at: Option<Instant>,
}

/// One subscriber's deliveries. Subscribers call [`Tap::deliver`] once per frame.
pub struct Tap {
    keep_seqs: bool,
    state: Mutex<State>,
}

/// A copy of a tap's counters.
#[derive(Clone, Default)]
pub struct TapSnapshot {
    /// Events delivered since the last reset.
    pub events: u64,
    /// Their latencies from the send time to delivery.
    pub latency: Latencies,
}

impl Tap {
    /// A tap; `keep_seqs` keeps every sequence number delivered.
    pub fn new(keep_seqs: bool) -> Tap {
        Tap {
            keep_seqs,
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Records the events of one frame, delivered now.
    pub fn deliver(&self, stamps: impl IntoIterator<Item = Stamp>) {
        let (now, at) = (now_ns(), Instant::now());
        self.with(|s| {
            let before = s.events;
            for st in stamps {
                s.events += 1;
                s.latency.record(Duration::from_nanos(
                    now.saturating_sub(st.sent_ns).max(0) as u64
                ));
                if self.keep_seqs {
                    s.seqs.push(st.seq);
                }
                if s.marked_at.is_none() && s.mark.is_some_and(|m| st.seq >= m) {
                    s.marked_at = Some(at);
                }
            }
            if s.events > before {
                s.first_at.get_or_insert(at);
                s.last_at = Some(at);
            }
        });
    }

    /// Forgets the counts and latencies so far (the start of a measured window).
    pub fn reset(&self) {
        self.with(|s| {
            s.events = 0;
            s.latency = Latencies::new();
        });
    }

    /// The counts and latencies since the last reset.
    pub fn snapshot(&self) -> TapSnapshot {
        self.with(|s| TapSnapshot {
            events: s.events,
            latency: s.latency.clone(),
        })
    }

    /// When the first event arrived.
    pub fn first_at(&self) -> Option<Instant> {
        self.with(|s| s.first_at)
    }

    /// When the latest event arrived.
    pub fn last_at(&self) -> Option<Instant> {
        self.with(|s| s.last_at)
    }

    /// Starts watching for the first event whose sequence number is `seq` or above.
    pub fn mark(&self, seq: u64) {
        self.with(|s| {
            s.mark = Some(seq);
            s.marked_at = None;
        });
    }

    /// When the first event at or above the mark arrived.
    pub fn marked_at(&self) -> Option<Instant> {
        self.with(|s| s.marked_at)
    }

    /// Every sequence number delivered, in order (only with `keep_seqs`).
    pub fn seqs(&self) -> Vec<u64> {
        self.with(|s| s.seqs.clone())
    }
}

/// Gaps and duplicates of a delivery: `required` sequence numbers that never came, and
/// sequence numbers that came more than once.
pub fn gaps_and_duplicates(delivered: &[u64], required: &[u64]) -> (u64, u64) {
    let mut seen = HashSet::with_capacity(delivered.len());
    let duplicates = delivered.iter().filter(|s| !seen.insert(**s)).count() as u64;
    let gaps = required.iter().filter(|s| !seen.contains(*s)).count() as u64;
    (gaps, duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_required_event_is_a_gap_and_a_repeat_is_a_duplicate() {
        assert_eq!(gaps_and_duplicates(&[1, 2, 3], &[1, 2, 3]), (0, 0));
        assert_eq!(gaps_and_duplicates(&[1, 3, 3, 4], &[2, 3, 4]), (1, 1));
    }

    #[test]
    fn the_mark_catches_the_first_event_at_or_above_it() {
        let tap = Tap::new(true);
        tap.mark(10);
        tap.deliver([Stamp { seq: 9, sent_ns: 1 }]);
        assert!(tap.marked_at().is_none());
        tap.deliver([Stamp {
            seq: 11,
            sent_ns: 1,
        }]);
        assert!(tap.marked_at().is_some());
        assert_eq!(tap.seqs(), vec![9, 11]);
        assert_eq!(tap.snapshot().events, 2);
    }
}
