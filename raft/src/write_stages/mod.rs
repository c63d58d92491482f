//! Where a write's time goes: the stages of the write path, timed for every acknowledged
//! write and counted in per-stage histograms that the node serves and renders on `/metrics`.
//!
//! The leader times each write from the stamps its entry left on the node's [`Timeline`]:
//!
//! ```text
//! received ─validate─▶ proposed ─propose─▶ appended ─commit─▶ on a quorum ─apply_wait─▶
//!   apply begins ─apply─▶ applied ─answer─▶ answered            (these add up to `total`)
//!
//! beside `commit`: appended ─leader_fsync─▶ durable here
//!                  appended ─send─▶ sent to a follower ─follower_round_trip─▶ its answer
//! ```
//!
//! "On a quorum" is when the quorum-th of the voters (the leader with its fsync, each follower
//! with its answer) held the entry durably. The chain and `leader_fsync` are counted when the
//! write is answered (`leader_fsync` only if the leader's fsync was done by then, as it nearly
//! always is); `send` and `follower_round_trip` when each follower answers, so that a follower
//! slower than the quorum is counted too. Followers time how long they take to append and
//! fsync what the leader sends (`follower_append`), and a node that passes a write on to the
//! leader times that call (`forward`).
//!
//! The histograms are process-wide, as the metrics recorder is.

mod histogram;
mod timeline;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use histogram::{Histogram, HistogramSnapshot, BUCKETS, UPPER_BOUNDS_US};
pub use timeline::{EntryTimes, Point, Timeline};

use crate::types::NodeId;

/// A stage of the write path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// At the leader: from the call's arrival to its proposal (routing, admission, decoding and
    /// checking the records, encoding the entry).
    Validate,
    /// From the proposal to the log store taking the entry (openraft's core).
    Propose,
    /// From the log store taking the entry to a quorum holding it durably.
    Commit,
    /// From a quorum holding the entry to the state machine beginning to apply it (openraft
    /// learning the commit, the apply queue, the entries before it in its apply batch, the
    /// trip to the blocking pool).
    ApplyWait,
    /// Applying the entry itself.
    Apply,
    /// From applied to the proposal's answer (the rest of its apply batch, the trip back from
    /// the blocking pool, openraft's responder, the handler's task being run).
    Answer,
    /// The whole write at the leader, from arrival to answer.
    Total,
    /// From the log store taking the entry to its fsync on the leader.
    LeaderFsync,
    /// From the log store taking the entry to its sending to a follower (each follower).
    Send,
    /// From sending the entry to a follower to its answer that it holds it (each follower).
    FollowerRoundTrip,
    /// On a follower: from an append request's arrival to its answer (append and fsync).
    FollowerAppend,
    /// On a node that is not the leader: a write passed on to the leader, whole.
    Forward,
}

impl Stage {
    /// The leader's chain, in order: together they make up [`Stage::Total`].
    pub const CHAIN: [Stage; 6] = [
        Stage::Validate,
        Stage::Propose,
        Stage::Commit,
        Stage::ApplyWait,
        Stage::Apply,
        Stage::Answer,
    ];

    /// Every stage, in the order tables list them.
    pub const ALL: [Stage; 12] = [
        Stage::Validate,
        Stage::Propose,
        Stage::Commit,
        Stage::ApplyWait,
        Stage::Apply,
        Stage::Answer,
        Stage::Total,
        Stage::LeaderFsync,
        Stage::Send,
        Stage::FollowerRoundTrip,
        Stage::FollowerAppend,
        Stage::Forward,
    ];

    /// The stage's name in metrics and tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Propose => "propose",
            Stage::Commit => "commit",
            Stage::ApplyWait => "apply_wait",
            Stage::Apply => "apply",
            Stage::Answer => "answer",
            Stage::Total => "total",
            Stage::LeaderFsync => "leader_fsync",
            Stage::Send => "send",
            Stage::FollowerRoundTrip => "follower_round_trip",
            Stage::FollowerAppend => "follower_append",
            Stage::Forward => "forward",
        }
    }

    fn position(self) -> usize {
        Stage::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

fn histograms() -> &'static [Histogram; Stage::ALL.len()] {
    static HISTOGRAMS: OnceLock<[Histogram; Stage::ALL.len()]> = OnceLock::new();
    HISTOGRAMS.get_or_init(|| std::array::from_fn(|_| Histogram::default()))
}

/// Counts `d` for `stage` in this process's histograms.
pub fn record(stage: Stage, d: Duration) {
    histograms()[stage.position()].record(d);
}

/// Every stage's histogram as it is now.
pub fn snapshot() -> Vec<(Stage, HistogramSnapshot)> {
    Stage::ALL
        .iter()
        .map(|s| (*s, histograms()[s.position()].snapshot()))
        .collect()
}

/// One write's stages, as far as its stamps tell them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStages {
    /// The stages of the chain, `Total` and `LeaderFsync`, each once, as far as known when the
    /// write was answered.
    pub stages: Vec<(Stage, Duration)>,
}

impl WriteStages {
    /// The duration of `stage` (the first, for a per-follower stage).
    pub fn get(&self, stage: Stage) -> Option<Duration> {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, d)| *d)
    }

    /// Counts every stage in this process's histograms.
    pub fn record(&self) {
        for (stage, d) in &self.stages {
            record(*stage, *d);
        }
    }
}

/// The instants of one write at the leader around its entry's stamps.
#[derive(Debug, Clone, Copy)]
pub struct WriteClock {
    /// The call arrived.
    pub received: Instant,
    /// It was proposed.
    pub proposed: Instant,
    /// The proposal answered.
    pub answered: Instant,
}

/// Times a write from its clock and its entry's stamps; `voters` are the cluster's voters, this
/// node (the leader, `leader`) among them.
pub fn write_stages(
    clock: WriteClock,
    entry: Option<&EntryTimes>,
    leader: NodeId,
    voters: &[NodeId],
) -> WriteStages {
    let mut stages = Vec::with_capacity(12);
    let mut span = |stage, from: Option<Instant>, to: Option<Instant>| {
        if let (Some(from), Some(to)) = (from, to) {
            stages.push((stage, to.saturating_duration_since(from)));
        }
    };
    span(Stage::Validate, Some(clock.received), Some(clock.proposed));
    span(Stage::Total, Some(clock.received), Some(clock.answered));
    if let Some(e) = entry {
        let on_quorum = on_quorum(e, leader, voters);
        span(Stage::Propose, Some(clock.proposed), e.appended);
        span(Stage::Commit, e.appended, on_quorum);
        span(Stage::ApplyWait, on_quorum, e.apply_started);
        span(Stage::Apply, e.apply_started, e.applied);
        span(Stage::Answer, e.applied, Some(clock.answered));
        span(Stage::LeaderFsync, e.appended, e.flushed);
    }
    WriteStages { stages }
}

/// When the quorum-th voter held the entry durably; `None` if fewer than a quorum's stamps
/// are known.
fn on_quorum(e: &EntryTimes, leader: NodeId, voters: &[NodeId]) -> Option<Instant> {
    let mut held: Vec<Instant> = e
        .followers
        .iter()
        .filter(|(id, _, _)| *id != leader && voters.contains(id))
        .filter_map(|(_, _, acked)| *acked)
        .collect();
    if voters.contains(&leader) {
        held.extend(e.flushed);
    }
    held.sort();
    let quorum = voters.len() / 2 + 1;
    held.get(quorum.checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(t0: Instant, n: u64) -> Option<Instant> {
        Some(t0 + Duration::from_micros(n))
    }

    #[test]
    fn the_chain_of_a_write_adds_up_to_its_total() {
        let t0 = Instant::now();
        let entry = EntryTimes {
            appended: us(t0, 100),
            flushed: us(t0, 400),
            followers: vec![
                (2, us(t0, 150), us(t0, 600)),
                (3, us(t0, 160), us(t0, 1_200)),
            ],
            apply_started: us(t0, 700),
            applied: us(t0, 800),
        };
        let clock = WriteClock {
            received: t0,
            proposed: t0 + Duration::from_micros(40),
            answered: t0 + Duration::from_micros(850),
        };
        let s = write_stages(clock, Some(&entry), 1, &[1, 2, 3]);
        let d = |n| Some(Duration::from_micros(n));
        assert_eq!(s.get(Stage::Validate), d(40));
        assert_eq!(s.get(Stage::Propose), d(60));
        // The quorum is the leader (its fsync done at 400 us) and the faster follower (its
        // answer at 600 us); the slower one answers after the write is applied.
        assert_eq!(s.get(Stage::Commit), d(500));
        assert_eq!(s.get(Stage::ApplyWait), d(100));
        assert_eq!(s.get(Stage::Apply), d(100));
        assert_eq!(s.get(Stage::Answer), d(50));
        assert_eq!(s.get(Stage::Total), d(850));
        let chain: Duration = Stage::CHAIN.iter().filter_map(|st| s.get(*st)).sum();
        assert_eq!(Some(chain), s.get(Stage::Total));
        assert_eq!(s.get(Stage::LeaderFsync), d(300));
        assert_eq!(
            s.get(Stage::FollowerRoundTrip),
            None,
            "counted as followers answer"
        );
    }

    #[test]
    fn a_learner_and_a_missing_answer_do_not_make_a_quorum() {
        let t0 = Instant::now();
        let entry = EntryTimes {
            appended: us(t0, 0),
            flushed: None,
            followers: vec![(2, us(t0, 1), None), (9, us(t0, 1), us(t0, 5))],
            apply_started: None,
            applied: None,
        };
        assert_eq!(on_quorum(&entry, 1, &[1, 2, 3]), None);
        let s = write_stages(
            WriteClock {
                received: t0,
                proposed: t0,
                answered: t0,
            },
            Some(&entry),
            1,
            &[1, 2, 3],
        );
        assert_eq!(s.get(Stage::Commit), None);
        assert!(s.get(Stage::Total).is_some());
    }
}
