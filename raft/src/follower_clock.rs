//! How stale a follower is, for reads with bounded staleness.
//!
//! Every append from the leader tells the follower the leader's commit index at that moment.
//! The follower records (monotonic time, commit index) for each; once its applied index reaches
//! a commit index it was told at time `t`, its state is at least as fresh as the leader's was at
//! `t`. Its staleness is the time since the newest such `t`. Records from an older leader are
//! dropped when a new one starts sending.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::types::NodeId;

/// Records kept: enough for several seconds of appends at any rate the leader batches at.
const KEEP: usize = 4096;

#[derive(Debug, Default)]
struct State {
    leader: Option<(u64, NodeId)>,
    last_contact: Option<Instant>,
    told: VecDeque<(Instant, u64)>,
}

/// The commit indexes a follower was told, and when.
#[derive(Debug, Default)]
pub struct FollowerClock {
    state: Mutex<State>,
}

impl FollowerClock {
    /// A clock that knows nothing yet.
    pub fn new() -> Self {
        FollowerClock::default()
    }

    /// Records an append from `leader` in `term` carrying its commit index.
    pub fn record(&self, term: u64, leader: NodeId, commit_index: Option<u64>, now: Instant) {
        let mut st = self.state.lock();
        if st.leader.is_some_and(|(t, _)| term < t) {
            // A deposed leader's word proves nothing (Raft refuses its append too).
            return;
        }
        if st.leader != Some((term, leader)) {
            st.leader = Some((term, leader));
            st.told.clear();
        }
        st.last_contact = Some(now);
        let Some(commit) = commit_index else {
            return;
        };
        // Keep the newest time for each commit index: the freshest proof of it.
        if let Some(last) = st.told.back_mut() {
            if last.1 == commit {
                last.0 = now;
                return;
            }
        }
        st.told.push_back((now, commit));
        while st.told.len() > KEEP {
            st.told.pop_front();
        }
    }

    /// How stale a state that has applied up to `applied_index` is, at `now`; `None` if no
    /// append of the current leader proves any freshness.
    pub fn staleness(&self, applied_index: u64, now: Instant) -> Option<Duration> {
        let st = self.state.lock();
        st.told
            .iter()
            .rev()
            .find(|(_, commit)| *commit <= applied_index)
            .map(|(t, _)| now.saturating_duration_since(*t))
    }

    /// When the current leader last sent an append.
    pub fn last_contact(&self) -> Option<Instant> {
        self.state.lock().last_contact
    }

    /// The leader the records are from.
    pub fn leader(&self) -> Option<(u64, NodeId)> {
        self.state.lock().leader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_is_the_age_of_the_newest_commit_index_reached() {
        let c = FollowerClock::new();
        let t0 = Instant::now();
        assert_eq!(c.staleness(100, t0), None);
        c.record(1, 7, Some(10), t0);
        c.record(1, 7, Some(20), t0 + Duration::from_millis(50));
        c.record(1, 7, Some(30), t0 + Duration::from_millis(100));
        let now = t0 + Duration::from_millis(130);
        assert_eq!(c.staleness(30, now), Some(Duration::from_millis(30)));
        assert_eq!(c.staleness(25, now), Some(Duration::from_millis(80)));
        assert_eq!(c.staleness(5, now), None);
        // A new leader: what the old one said proves nothing about the new term.
        c.record(2, 8, None, now);
        assert_eq!(c.staleness(30, now), None);
        assert_eq!(c.leader(), Some((2, 8)));
        c.record(1, 7, Some(40), now);
        assert_eq!(c.staleness(40, now), None, "an older term is ignored");
    }

    #[test]
    fn repeated_commit_indexes_refresh_the_time() {
        let c = FollowerClock::new();
        let t0 = Instant::now();
        c.record(1, 7, Some(10), t0);
        c.record(1, 7, Some(10), t0 + Duration::from_millis(40));
        let now = t0 + Duration::from_millis(50);
        assert_eq!(c.staleness(10, now), Some(Duration::from_millis(10)));
    }
}
