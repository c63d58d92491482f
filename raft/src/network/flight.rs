//! The appends a stream has sent and not yet had answered, and how long their next answer may
//! take: the peer call timeout, plus the bytes still in flight at the slowest transfer rate a
//! peer is expected to keep up. A large entry thus gets the time its bytes need, and a peer
//! that answers nothing is still given up on.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use std::time::Instant;

/// How long the next answer may take.
#[derive(Debug, Clone, Copy)]
pub struct AnswerDeadline {
    /// The time any answer may take.
    pub base: Duration,
    /// Bytes per second a peer is expected to take in at least.
    pub min_bytes_per_sec: u64,
}

impl AnswerDeadline {
    /// The time an answer may take with `bytes` in flight.
    pub fn allowance(&self, bytes: u64) -> Duration {
        let rate = self.min_bytes_per_sec.max(1) as f64;
        self.base + Duration::from_secs_f64(bytes as f64 / rate)
    }
}

#[derive(Debug)]
struct State {
    /// Bytes of each request owed an answer, oldest first (answers come in order).
    owed: VecDeque<u64>,
    /// Their sum.
    bytes: u64,
    /// The last answer, or the send that made an answer owed after none was.
    since: Instant,
}

/// Requests in flight on one append stream. Shared by the side that sends and the side that
/// reads answers.
#[derive(Debug)]
pub struct Flight {
    deadline: AnswerDeadline,
    state: Mutex<State>,
}

impl Flight {
    /// An idle stream whose answers are bounded by `deadline`.
    pub fn new(deadline: AnswerDeadline) -> Self {
        Flight {
            deadline,
            state: Mutex::new(State {
                owed: VecDeque::new(),
                bytes: 0,
                since: Instant::now(),
            }),
        }
    }

    /// A request of `bytes` was handed to the transport.
    pub fn sent(&self, bytes: u64) {
        self.sent_at(bytes, Instant::now());
    }

    fn sent_at(&self, bytes: u64, now: Instant) {
        let mut s = self.state.lock();
        if s.owed.is_empty() {
            s.since = now;
        }
        s.owed.push_back(bytes);
        s.bytes = s.bytes.saturating_add(bytes);
    }

    /// The oldest request owed was answered.
    pub fn answered(&self) {
        self.answered_at(Instant::now());
    }

    fn answered_at(&self, now: Instant) {
        let mut s = self.state.lock();
        if let Some(b) = s.owed.pop_front() {
            s.bytes = s.bytes.saturating_sub(b);
        }
        s.since = now;
    }

    /// When the next answer is overdue; `None` while none is owed.
    pub fn deadline(&self) -> Option<Instant> {
        let s = self.state.lock();
        if s.owed.is_empty() {
            return None;
        }
        Some(s.since + self.deadline.allowance(s.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: AnswerDeadline = AnswerDeadline {
        base: Duration::from_secs(2),
        min_bytes_per_sec: 4 << 20,
    };

    #[test]
    fn the_allowance_grows_with_the_bytes_in_flight() {
        assert_eq!(D.allowance(0), Duration::from_secs(2));
        assert_eq!(D.allowance(8 << 20), Duration::from_secs(4));
        assert!(D.allowance(40 << 20) > Duration::from_secs(11));
    }

    #[test]
    fn only_an_owed_answer_has_a_deadline_and_each_answer_restarts_it() {
        let f = Flight::new(D);
        assert_eq!(f.deadline(), None);
        let t0 = Instant::now();
        f.sent_at(4 << 20, t0);
        f.sent_at(4 << 20, t0 + Duration::from_secs(1));
        assert_eq!(f.deadline(), Some(t0 + Duration::from_secs(4)));
        let t3 = t0 + Duration::from_secs(3);
        f.answered_at(t3);
        assert_eq!(f.deadline(), Some(t3 + Duration::from_secs(3)));
        f.answered_at(t3);
        assert_eq!(f.deadline(), None);
        // An extra answer (a peer's mistake) does not underflow.
        f.answered_at(t3);
        assert_eq!(f.deadline(), None);
    }
}
