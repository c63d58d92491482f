//! What the demo's read-back of one user's orders may answer at each consistency, from when
//! and at which log index each of that user's orders was acknowledged: a linearizable read
//! sees them all, a bounded read at least those acknowledged before its staleness bound, a
//! local read a subset, and any read with `min_applied_index` at least those up to that index.

use std::time::{Duration, Instant};

use qastore_proto::v1 as pb;

/// One acknowledged order: when the acknowledgement arrived and the log index it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// When the client had the acknowledgement.
    pub at: Instant,
    /// The log index of the write.
    pub index: u64,
}

/// How many of the user's orders a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promise {
    /// At least this many.
    pub min: u64,
    /// At most this many (every acknowledged order).
    pub max: u64,
}

impl Promise {
    /// What a read of `consistency` (with `max_staleness` for bounded reads and
    /// `min_applied_index` if not 0) that began at `started` promises, given the user's
    /// acknowledged orders `acks` and that nothing else writes that user's orders.
    pub fn of(
        consistency: pb::Consistency,
        max_staleness: Duration,
        min_applied_index: u64,
        acks: &[Ack],
        started: Instant,
    ) -> Promise {
        let count = |keep: &dyn Fn(&Ack) -> bool| acks.iter().filter(|a| keep(a)).count() as u64;
        let by_consistency = match consistency {
            pb::Consistency::Linearizable | pb::Consistency::Unspecified => {
                count(&|a| a.at <= started)
            }
            // The node's state is at most `max_staleness` old: what was acknowledged before
            // then is in it; anything later may not be yet.
            pb::Consistency::Bounded => started
                .checked_sub(max_staleness)
                .map_or(0, |cut| count(&|a| a.at <= cut)),
            pb::Consistency::Local => 0,
        };
        let by_index = if min_applied_index > 0 {
            count(&|a| a.index <= min_applied_index)
        } else {
            0
        };
        Promise {
            min: by_consistency.max(by_index),
            max: acks.len() as u64,
        }
    }

    /// Whether an answer of `n` orders keeps the promise.
    pub fn admits(&self, n: u64) -> bool {
        (self.min..=self.max).contains(&n)
    }
}

impl std::fmt::Display for Promise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.max)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 47 orders, one every 100 ms up to `now`, at log indexes 1..=47.
    fn acks(now: Instant) -> Vec<Ack> {
        (0..47u64)
            .map(|i| Ack {
                at: now - Duration::from_millis(100 * (46 - i)),
                index: i + 1,
            })
            .collect()
    }

    #[test]
    fn a_bounded_read_may_miss_what_is_younger_than_its_bound() {
        let now = Instant::now() + Duration::from_secs(10);
        let acks = acks(now);
        let p = Promise::of(
            pb::Consistency::Bounded,
            Duration::from_secs(1),
            0,
            &acks,
            now,
        );
        // Acknowledged at least 1 s before the read: the first 37 (ages 4.6 s .. 1.0 s).
        assert_eq!(p, Promise { min: 37, max: 47 });
        assert!(p.admits(39), "missing recent writes is what bounded allows");
        assert!(p.admits(47));
        assert!(!p.admits(36));
        assert!(!p.admits(48));
        assert_eq!(p.to_string(), "37..47");
    }

    #[test]
    fn linearizable_sees_all_and_local_a_subset() {
        let now = Instant::now() + Duration::from_secs(10);
        let acks = acks(now);
        let lin = Promise::of(pb::Consistency::Linearizable, Duration::ZERO, 0, &acks, now);
        assert!(lin.admits(47) && !lin.admits(39) && !lin.admits(48));
        assert_eq!(lin.to_string(), "47");
        let local = Promise::of(pb::Consistency::Local, Duration::ZERO, 0, &acks, now);
        assert!(local.admits(0) && local.admits(39) && !local.admits(48));
    }

    #[test]
    fn a_minimum_applied_index_requires_the_writes_up_to_it() {
        let now = Instant::now() + Duration::from_secs(10);
        let acks = acks(now);
        let all = Promise::of(pb::Consistency::Local, Duration::ZERO, 47, &acks, now);
        assert_eq!(all, Promise { min: 47, max: 47 });
        let some = Promise::of(pb::Consistency::Local, Duration::ZERO, 40, &acks, now);
        assert!(some.admits(40) && !some.admits(39));
    }
}
