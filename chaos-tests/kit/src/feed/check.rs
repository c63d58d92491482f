//! What a subscriber received, held against the committed journal: positions strictly
//! increase, and its events are exactly the committed events matching its filter from its
//! start to the last position it received (or a progress frame vouched for), each once and
//! unaltered. Pure logic: reading the streams and the journal is the callers' job.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use prost::Message;
use qastore_exchange::feed::Position;
use qastore_proto::v1 as pb;
use serde::Serialize;

/// One event as the check compares it: where it sits and a digest of what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Its position (`index:ordinal`).
    #[serde(serialize_with = "as_text")]
    pub position: Position,
    /// A digest of its record, outcome and commit time.
    pub digest: u64,
}

fn as_text<S: serde::Serializer>(p: &Position, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

impl Seen {
    /// The event as received: `None` when it carries no position.
    pub fn of(event: &pb::Event) -> Option<Seen> {
        let p = event.position?;
        Some(Seen {
            position: Position::new(p.log_index, p.ordinal),
            digest: digest(event),
        })
    }
}

/// A digest of what an event carries besides its position: the same on every node that sends
/// it, live or from the journal.
pub fn digest(event: &pb::Event) -> u64 {
    // The std hasher with its fixed keys: stable within a process, which is all a run needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    event
        .record
        .as_ref()
        .map(Message::encode_to_vec)
        .hash(&mut h);
    event
        .result
        .as_ref()
        .map(Message::encode_to_vec)
        .hash(&mut h);
    event.commit_time_ns.hash(&mut h);
    h.finish()
}

/// What one subscriber was handed, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Its start: it asked for the events after this position.
    pub after: Position,
    /// Its events, in the order the subscription handed them over.
    pub events: Vec<Seen>,
    /// The highest position a progress frame vouched for: every matching event up to it was
    /// sent.
    pub vouched: Option<Position>,
}

impl Received {
    /// How far the subscriber claims to have everything: its last event or what progress
    /// vouched for, whichever is later; its start when it has neither.
    pub fn covered(&self) -> Position {
        let last = self.events.iter().map(|e| e.position).max();
        [Some(self.after), last, self.vouched]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.after)
    }
}

/// The committed events matching one filter, as read back after the run: every one in
/// `(after, through]`, in position order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The read began after this position (events at or before it are not known).
    pub after: Position,
    /// The read went this far.
    pub through: Position,
    /// The matching events.
    pub events: Vec<Seen>,
}

/// What the check found for one subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionCheck {
    /// Events received.
    pub received: usize,
    /// Committed events the check expected (those in the window it could check).
    pub expected: usize,
    /// Received events outside what the journal read covered, left unchecked.
    pub unchecked: usize,
    /// Committed matching events the subscriber never received.
    #[serde(serialize_with = "all_as_text")]
    pub missing: Vec<Position>,
    /// Runs of consecutive missing events.
    pub gaps: usize,
    /// Events received more than once.
    #[serde(serialize_with = "all_as_text")]
    pub duplicates: Vec<Position>,
    /// Events received after a later position.
    #[serde(serialize_with = "all_as_text")]
    pub out_of_order: Vec<Position>,
    /// Events received that were not committed there, did not match the filter, or came
    /// before the start.
    #[serde(serialize_with = "all_as_text")]
    pub unexpected: Vec<Position>,
    /// Events received whose content differs from what was committed at their position.
    #[serde(serialize_with = "all_as_text")]
    pub altered: Vec<Position>,
}

fn all_as_text<S: serde::Serializer>(v: &[Position], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

impl SubscriptionCheck {
    /// Whether the subscriber received exactly what it should have.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.duplicates.is_empty()
            && self.out_of_order.is_empty()
            && self.unexpected.is_empty()
            && self.altered.is_empty()
    }

    /// One line for people: counts, and the first position of each kind of fault.
    pub fn describe(&self) -> String {
        let first = |v: &[Position]| v.first().map_or(String::new(), |p| format!(" (first {p})"));
        format!(
            "{} events received ({} checked against the journal, {} unchecked), {} gaps ({} events missing{}), {} duplicates{}, {} out of order{}, {} unexpected{}, {} altered{}",
            self.received,
            self.expected,
            self.unchecked,
            self.gaps,
            self.missing.len(),
            first(&self.missing),
            self.duplicates.len(),
            first(&self.duplicates),
            self.out_of_order.len(),
            first(&self.out_of_order),
            self.unexpected.len(),
            first(&self.unexpected),
            self.altered.len(),
            first(&self.altered),
        )
    }
}

/// Checks what a subscriber `received` against the `committed` events matching its filter.
/// The window checked runs from the later of the two starts to the earlier of what the
/// subscriber covered and what the journal read reached.
pub fn check_subscription(received: &Received, committed: &Committed) -> SubscriptionCheck {
    let mut out = SubscriptionCheck {
        received: received.events.len(),
        ..SubscriptionCheck::default()
    };
    // Order and uniqueness, over the stream as handed over.
    let mut seen = HashSet::new();
    let mut highest: Option<Position> = None;
    for e in &received.events {
        if !seen.insert(e.position) {
            out.duplicates.push(e.position);
        } else if highest.is_some_and(|h| e.position < h) {
            out.out_of_order.push(e.position);
        }
        highest = highest.max(Some(e.position));
    }
    let from = received.after.max(committed.after);
    let to = received.covered().min(committed.through);
    let in_window = |p: Position| p > from && p <= to;
    // The first copy of each position stands for it; later copies are already counted.
    let mut got: BTreeMap<Position, u64> = BTreeMap::new();
    for e in &received.events {
        if e.position <= received.after {
            out.unexpected.push(e.position);
        } else if in_window(e.position) {
            got.entry(e.position).or_insert(e.digest);
        } else {
            out.unchecked += 1;
        }
    }
    let mut previous_missing = false;
    for c in committed.events.iter().filter(|c| in_window(c.position)) {
        out.expected += 1;
        match got.remove(&c.position) {
            Some(d) => {
                if d != c.digest {
                    out.altered.push(c.position);
                }
                previous_missing = false;
            }
            None => {
                out.missing.push(c.position);
                if !previous_missing {
                    out.gaps += 1;
                }
                previous_missing = true;
            }
        }
    }
    out.unexpected.extend(got.into_keys());
    out.unexpected.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u64, ordinal: u32) -> Seen {
        Seen {
            position: Position::new(index, ordinal),
            digest: index * 1000 + u64::from(ordinal),
        }
    }

    /// The journal of one filter: batches 1 to 6, two events each, every event matching.
    fn journal() -> Committed {
        Committed {
            after: Position::end_of(0),
            through: Position::end_of(6),
            events: (1..=6).flat_map(|i| [at(i, 0), at(i, 1)]).collect(),
        }
    }

    fn received(after: Position, events: Vec<Seen>) -> Received {
        Received {
            after,
            events,
            vouched: None,
        }
    }

    #[test]
    fn a_subscriber_that_received_every_event_after_its_start_passes() {
        let r = received(
            Position::end_of(2),
            vec![at(3, 0), at(3, 1), at(4, 0), at(4, 1), at(5, 0)],
        );
        let c = check_subscription(&r, &journal());
        assert!(c.ok(), "{c:?}");
        assert_eq!((c.received, c.expected, c.unchecked), (5, 5, 0));
        // Starting in the middle of a batch, after one of its events.
        let r = received(Position::new(3, 0), vec![at(3, 1), at(4, 0)]);
        assert!(check_subscription(&r, &journal()).ok());
    }

    #[test]
    fn a_gap_in_the_middle_is_caught_and_counted_as_one_run() {
        let r = received(
            Position::end_of(0),
            vec![at(1, 0), at(1, 1), at(3, 0), at(3, 1)],
        );
        let c = check_subscription(&r, &journal());
        assert!(!c.ok());
        assert_eq!(c.missing, vec![Position::new(2, 0), Position::new(2, 1)]);
        assert_eq!(c.gaps, 1);
        assert!(c.duplicates.is_empty() && c.out_of_order.is_empty());
    }

    #[test]
    fn missing_events_at_the_start_are_a_gap() {
        let r = received(Position::end_of(1), vec![at(2, 1), at(3, 0)]);
        let c = check_subscription(&r, &journal());
        assert_eq!(c.missing, vec![Position::new(2, 0)]);
        assert_eq!(c.gaps, 1);
    }

    #[test]
    fn events_a_progress_frame_vouched_for_but_never_sent_are_missing() {
        let mut r = received(Position::end_of(0), vec![at(1, 0), at(1, 1)]);
        r.vouched = Some(Position::end_of(2));
        let c = check_subscription(&r, &journal());
        assert_eq!(c.missing, vec![Position::new(2, 0), Position::new(2, 1)]);
        // Without the progress frame the tail is simply not reached yet.
        r.vouched = None;
        assert!(check_subscription(&r, &journal()).ok());
    }

    #[test]
    fn a_duplicate_is_caught_adjacent_or_not() {
        let r = received(Position::end_of(0), vec![at(1, 0), at(1, 0), at(1, 1)]);
        let c = check_subscription(&r, &journal());
        assert_eq!(c.duplicates, vec![Position::new(1, 0)]);
        assert!(c.missing.is_empty() && c.out_of_order.is_empty());
        // Delivered again after a later event: a duplicate (not also out of order).
        let r = received(
            Position::end_of(0),
            vec![at(1, 0), at(1, 1), at(2, 0), at(1, 1), at(2, 1)],
        );
        let c = check_subscription(&r, &journal());
        assert_eq!(c.duplicates, vec![Position::new(1, 1)]);
        assert!(c.out_of_order.is_empty());
        assert!(!c.ok());
    }

    #[test]
    fn a_reorder_is_caught_even_when_every_event_arrives() {
        let r = received(
            Position::end_of(0),
            vec![at(1, 0), at(2, 0), at(1, 1), at(2, 1)],
        );
        let c = check_subscription(&r, &journal());
        assert_eq!(c.out_of_order, vec![Position::new(1, 1)]);
        assert!(c.missing.is_empty() && c.duplicates.is_empty());
        assert!(!c.ok());
    }

    #[test]
    fn an_event_never_committed_or_before_the_start_is_unexpected() {
        let r = received(Position::end_of(1), vec![at(1, 1), at(2, 0), at(2, 1)]);
        assert_eq!(
            check_subscription(&r, &journal()).unexpected,
            vec![Position::new(1, 1)]
        );
        let r = received(Position::end_of(1), vec![at(2, 0), at(2, 1), at(2, 2)]);
        assert_eq!(
            check_subscription(&r, &journal()).unexpected,
            vec![Position::new(2, 2)]
        );
    }

    #[test]
    fn an_event_whose_content_differs_from_the_journal_is_altered() {
        let mut changed = at(2, 0);
        changed.digest += 1;
        let r = received(Position::end_of(1), vec![changed, at(2, 1)]);
        assert_eq!(
            check_subscription(&r, &journal()).altered,
            vec![Position::new(2, 0)]
        );
    }

    #[test]
    fn only_the_window_both_sides_cover_is_checked() {
        // The journal read began after batch 2 (older events left it) and reached batch 4.
        let mut j = journal();
        j.after = Position::end_of(2);
        j.through = Position::end_of(4);
        j.events
            .retain(|e| e.position > j.after && e.position <= j.through);
        let r = received(
            Position::end_of(0),
            (1..=5).flat_map(|i| [at(i, 0), at(i, 1)]).collect(),
        );
        let c = check_subscription(&r, &j);
        assert!(c.ok(), "{c:?}");
        assert_eq!((c.expected, c.unchecked), (4, 6));
    }

    #[test]
    fn a_subscriber_that_received_nothing_and_was_promised_nothing_passes() {
        let r = received(Position::end_of(6), Vec::new());
        let c = check_subscription(&r, &journal());
        assert!(c.ok());
        assert_eq!(c.expected, 0);
    }

    #[test]
    fn the_digest_tells_events_apart_by_content_not_position() {
        let e = |user: &str, index: u64| pb::Event {
            position: Some(pb::Position {
                log_index: index,
                ordinal: 0,
            }),
            record: Some(crate::samples::order(user, "o1")),
            commit_time_ns: 5,
            ..Default::default()
        };
        assert_eq!(digest(&e("u1", 1)), digest(&e("u1", 2)));
        assert_ne!(digest(&e("u1", 1)), digest(&e("u2", 1)));
        assert_eq!(
            Seen::of(&e("u1", 3)).map(|s| s.position),
            Some(Position::new(3, 0))
        );
    }
}
