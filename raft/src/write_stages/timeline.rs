//! When each recent log entry passed each point of the write path on this node: appended to
//! the log, durable in it, sent to and acknowledged by each follower, applied. The log store,
//! the peer clients and the state machine stamp it as entries pass; the leader reads an
//! entry's stamps once its write is answered.
//!
//! A ring of slots indexed by log index: a slot is claimed when its entry is appended and
//! reused by the entry `SLOTS` later, long after that write was answered (admission keeps far
//! fewer entries waiting). Stamps are relaxed atomics; a stamp for an entry whose slot was
//! taken by a later one is dropped, and a reader checks the slot still holds its entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Stage;
use crate::types::NodeId;

/// Entries whose stamps are kept.
const SLOTS: usize = 8192;

/// Followers timed at once; a further one takes the place of the one that went longest
/// without opening a stream.
pub const PEERS: usize = 8;

/// One entry's stamps: nanoseconds since the timeline's epoch, plus one (0: not yet).
#[derive(Debug, Default)]
struct Slot {
    /// The entry's index plus one (0: empty).
    index: AtomicU64,
    appended: AtomicU64,
    flushed: AtomicU64,
    sent: [AtomicU64; PEERS],
    acked: [AtomicU64; PEERS],
    apply_started: AtomicU64,
    applied: AtomicU64,
}

/// An entry's stamps as read, as instants.
#[derive(Debug, Clone, Default)]
pub struct EntryTimes {
    /// Handed to the log store.
    pub appended: Option<Instant>,
    /// Durable in this node's log.
    pub flushed: Option<Instant>,
    /// Per follower: first sent to it, and its answer that it holds the entry durably.
    pub followers: Vec<(NodeId, Option<Instant>, Option<Instant>)>,
    /// The state machine began applying it.
    pub apply_started: Option<Instant>,
    /// The state machine applied it.
    pub applied: Option<Instant>,
}

/// The stamps of this node's recent entries.
#[derive(Debug)]
pub struct Timeline {
    epoch: Instant,
    slots: Box<[Slot]>,
    /// The follower each position of a slot's `sent` and `acked` is for, with when it was
    /// last asked for.
    peers: Mutex<Vec<(NodeId, Instant)>>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            epoch: Instant::now(),
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            peers: Mutex::new(Vec::with_capacity(PEERS)),
        }
    }
}

/// A field of a slot (a follower's answer is stamped by [`Timeline::acknowledged`], which
/// also counts it).
#[derive(Debug, Clone, Copy)]
pub enum Point {
    /// Flushed to this node's log.
    Flushed,
    /// Sent to the follower at a position.
    Sent(usize),
    /// Its apply began.
    ApplyStarted,
    /// Applied.
    Applied,
}

impl Timeline {
    /// A stamp for `at`.
    fn stamp_of(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        (ns.min(u128::from(u64::MAX - 1)) as u64) + 1
    }

    fn instant_of(&self, stamp: u64) -> Option<Instant> {
        (stamp > 0).then(|| self.epoch + Duration::from_nanos(stamp - 1))
    }

    fn slot(&self, index: u64) -> &Slot {
        &self.slots[(index % SLOTS as u64) as usize]
    }

    /// Entry `index` was handed to the log store at `at`: its slot is cleared and taken.
    pub fn appended(&self, index: u64, at: Instant) {
        let slot = self.slot(index);
        slot.index.store(0, Ordering::Relaxed);
        for f in [&slot.flushed, &slot.apply_started, &slot.applied] {
            f.store(0, Ordering::Relaxed);
        }
        for f in slot.sent.iter().chain(&slot.acked) {
            f.store(0, Ordering::Relaxed);
        }
        slot.appended.store(self.stamp_of(at), Ordering::Relaxed);
        slot.index.store(index + 1, Ordering::Release);
    }

    /// Entry `index` passed `point` at `at`; only the first time counts.
    pub fn passed(&self, index: u64, point: Point, at: Instant) {
        let slot = self.slot(index);
        if slot.index.load(Ordering::Acquire) != index + 1 {
            return;
        }
        let field = match point {
            Point::Flushed => &slot.flushed,
            Point::Sent(p) => &slot.sent[p % PEERS],
            Point::ApplyStarted => &slot.apply_started,
            Point::Applied => &slot.applied,
        };
        let _ = field.compare_exchange(0, self.stamp_of(at), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Entries `from..=to` passed `point` at `at`; at most the last `SLOTS` of them are
    /// stamped (earlier ones have left the ring).
    pub fn range_passed(&self, from: u64, to: u64, point: Point, at: Instant) {
        let from = from.max(to.saturating_sub(SLOTS as u64 - 1));
        for index in from..=to {
            self.passed(index, point, at);
        }
    }

    /// The follower at `position` answered at `at` that it holds entries `from..=to`: stamps
    /// them, and counts, for each entry it is the first answer about, how long the entry
    /// waited to be sent to that follower (`send`) and the round trip (`follower_round_trip`).
    /// Counted here rather than when the write is answered, so that a follower slower than
    /// the quorum is counted too.
    pub fn acknowledged(&self, from: u64, to: u64, position: usize, at: Instant) {
        let from = from.max(to.saturating_sub(SLOTS as u64 - 1));
        let stamp = self.stamp_of(at);
        for index in from..=to {
            let slot = self.slot(index);
            if slot.index.load(Ordering::Acquire) != index + 1 {
                continue;
            }
            let field = &slot.acked[position % PEERS];
            if field
                .compare_exchange(0, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let get = |f: &AtomicU64| self.instant_of(f.load(Ordering::Relaxed));
            let (appended, sent) = (get(&slot.appended), get(&slot.sent[position % PEERS]));
            if let (Some(appended), Some(sent)) = (appended, sent) {
                super::record(Stage::Send, sent.saturating_duration_since(appended));
                super::record(Stage::FollowerRoundTrip, at.saturating_duration_since(sent));
            }
        }
    }

    /// The position of follower `id` in every slot.
    pub fn peer_position(&self, id: NodeId) -> usize {
        let now = Instant::now();
        let mut peers = self.peers.lock();
        if let Some(p) = peers.iter().position(|(peer, _)| *peer == id) {
            peers[p].1 = now;
            return p;
        }
        if peers.len() < PEERS {
            peers.push((id, now));
            return peers.len() - 1;
        }
        let oldest = peers
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, at))| *at)
            .map_or(0, |(p, _)| p);
        peers[oldest] = (id, now);
        oldest
    }

    /// Entry `index`'s stamps, if its slot still holds it.
    pub fn read(&self, index: u64) -> Option<EntryTimes> {
        let slot = self.slot(index);
        if slot.index.load(Ordering::Acquire) != index + 1 {
            return None;
        }
        let get = |f: &AtomicU64| self.instant_of(f.load(Ordering::Relaxed));
        let followers = self
            .peers
            .lock()
            .iter()
            .enumerate()
            .map(|(p, (id, _))| (*id, get(&slot.sent[p]), get(&slot.acked[p])))
            .collect();
        let times = EntryTimes {
            appended: get(&slot.appended),
            flushed: get(&slot.flushed),
            followers,
            apply_started: get(&slot.apply_started),
            applied: get(&slot.applied),
        };
        // Taken by a later entry while being read: the stamps may be that entry's.
        (slot.index.load(Ordering::Acquire) == index + 1).then_some(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_its_first_stamp_of_each_point() {
        let t = Timeline::default();
        let t0 = Instant::now();
        t.appended(7, t0);
        let p = t.peer_position(2);
        t.passed(7, Point::Sent(p), t0 + Duration::from_micros(10));
        t.passed(7, Point::Sent(p), t0 + Duration::from_micros(99));
        t.acknowledged(7, 7, p, t0 + Duration::from_micros(50));
        t.passed(7, Point::Flushed, t0 + Duration::from_micros(40));
        let r = t.read(7).unwrap();
        assert_eq!(r.appended, Some(t0));
        assert_eq!(r.flushed, Some(t0 + Duration::from_micros(40)));
        assert_eq!(
            r.followers,
            vec![(
                2,
                Some(t0 + Duration::from_micros(10)),
                Some(t0 + Duration::from_micros(50))
            )]
        );
        assert_eq!(r.applied, None);
    }

    #[test]
    fn a_slot_taken_by_a_later_entry_answers_nothing_for_the_earlier() {
        let t = Timeline::default();
        let t0 = Instant::now();
        t.appended(3, t0);
        t.appended(3 + SLOTS as u64, t0);
        assert!(t.read(3).is_none());
        t.passed(3, Point::Flushed, t0);
        assert_eq!(t.read(3 + SLOTS as u64).unwrap().flushed, None);
    }

    #[test]
    fn a_follower_beyond_the_positions_takes_the_least_recent_one() {
        let t = Timeline::default();
        for id in 0..PEERS as u64 {
            assert_eq!(t.peer_position(id), id as usize);
        }
        assert_eq!(t.peer_position(3), 3);
        let p = t.peer_position(100);
        assert_eq!(p, 0, "node 0 went longest without a stream");
        assert_eq!(t.peer_position(100), 0);
    }
}
