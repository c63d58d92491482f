//! What a subscription has handed to its caller, and so where a resumed stream must start and
//! which events it must drop: the caller sees one sequence without gap or repeat, however
//! many nodes served it.

use qastore_proto::v1 as pb;

use super::options::Start;
use crate::error::ClientError;

/// A position as a sortable pair.
pub(crate) fn key(p: &pb::Position) -> (u64, u32) {
    (p.log_index, p.ordinal)
}

/// The position after every event of batch `index`.
fn end_of(index: u64) -> pb::Position {
    pb::Position {
        log_index: index,
        ordinal: u32::MAX,
    }
}

/// How far a snapshot start got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotState {
    /// No part reached the caller.
    None,
    /// Some parts did, not the last.
    Partial,
    /// The last part did: events after its index follow.
    Done,
}

/// The caller's view of a subscription.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The start as first asked (`None`: unset).
    original: Option<Start>,
    /// Whether the stream is a durable consumer's.
    consumer: bool,
    /// Everything at or before it reached the caller (an event, or a whole snapshot).
    through: Option<pb::Position>,
    /// The last event that reached the caller.
    last_event: Option<pb::Position>,
    /// For a tail start before any event: the last applied position a node reported, up to
    /// which nothing matching was left unsent.
    tail_floor: Option<pb::Position>,
    snapshot: SnapshotState,
}

impl Cursor {
    /// A cursor for a stream first started at `original`.
    pub(crate) fn new(original: Option<Start>, consumer: bool) -> Cursor {
        Cursor {
            original,
            consumer,
            through: None,
            last_event: None,
            tail_floor: None,
            snapshot: SnapshotState::None,
        }
    }

    /// The last event handed on.
    pub(crate) fn last_event(&self) -> Option<pb::Position> {
        self.last_event
    }

    fn starts_at_tail(&self) -> bool {
        match &self.original {
            Some(Start::Tail) => true,
            None => !self.consumer,
            Some(_) => false,
        }
    }

    /// Where the next stream starts. `consumer_known`: the durable consumer exists (the node
    /// then resumes after its cursor and no start may be given).
    pub(crate) fn resume_start(&self, consumer_known: bool) -> Result<Option<Start>, ClientError> {
        if self.snapshot == SnapshotState::Partial {
            return Err(ClientError::SnapshotInterrupted(
                "the node serving it failed".into(),
            ));
        }
        if self.consumer && consumer_known {
            return Ok(None);
        }
        if let Some(p) = self.through {
            return Ok(Some(Start::After(p)));
        }
        if self.starts_at_tail() {
            if let Some(p) = self.tail_floor {
                return Ok(Some(Start::After(p)));
            }
        }
        Ok(self.original.clone())
    }

    /// Whether `event` goes on to the caller: not if it is at or before what already went.
    pub(crate) fn accept_event(&mut self, event: &pb::Event) -> bool {
        let at = event.position.unwrap_or_default();
        if self.through.is_some_and(|t| key(&at) <= key(&t)) {
            return false;
        }
        self.through = Some(at);
        self.last_event = Some(at);
        true
    }

    /// Whether a snapshot part goes on to the caller: not once a whole snapshot has.
    pub(crate) fn accept_snapshot(&mut self, part: &pb::SnapshotPart) -> bool {
        if self.snapshot == SnapshotState::Done {
            return false;
        }
        if part.last {
            self.snapshot = SnapshotState::Done;
            let end = end_of(part.applied_index);
            if self.through.is_none_or(|t| key(&t) < key(&end)) {
                self.through = Some(end);
            }
        } else {
            self.snapshot = SnapshotState::Partial;
        }
        true
    }

    /// Notes a progress frame: before any event of a tail start, a resumed stream can begin
    /// after what the node had applied.
    pub(crate) fn progress(&mut self, progress: &pb::Progress) {
        let Some(applied) = progress.applied else {
            return;
        };
        if self.through.is_none()
            && self.starts_at_tail()
            && self.tail_floor.is_none_or(|f| key(&f) < key(&applied))
        {
            self.tail_floor = Some(applied);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(log_index: u64, ordinal: u32) -> pb::Position {
        pb::Position { log_index, ordinal }
    }

    fn event(i: u64, o: u32) -> pb::Event {
        pb::Event {
            position: Some(pos(i, o)),
            merged: 1,
            ..Default::default()
        }
    }

    fn progress(i: u64) -> pb::Progress {
        pb::Progress {
            applied: Some(end_of(i)),
            ..Default::default()
        }
    }

    #[test]
    fn events_at_or_before_the_last_delivered_are_dropped_after_a_resume() {
        let mut c = Cursor::new(Some(Start::Oldest), false);
        assert_eq!(c.resume_start(false).unwrap(), Some(Start::Oldest));
        assert!(c.accept_event(&event(3, 0)));
        assert!(c.accept_event(&event(3, 1)));
        assert!(c.accept_event(&event(5, 0)));
        assert_eq!(
            c.resume_start(false).unwrap(),
            Some(Start::After(pos(5, 0)))
        );
        // Another node replays from an older point: what was delivered is dropped once.
        assert!(!c.accept_event(&event(3, 1)));
        assert!(!c.accept_event(&event(5, 0)));
        assert!(c.accept_event(&event(5, 1)));
        assert!(c.accept_event(&event(6, 0)));
        assert_eq!(c.last_event(), Some(pos(6, 0)));
    }

    #[test]
    fn a_tail_start_resumes_after_the_last_reported_progress() {
        let mut c = Cursor::new(None, false);
        assert_eq!(c.resume_start(false).unwrap(), None);
        c.progress(&progress(40));
        c.progress(&progress(38));
        assert_eq!(
            c.resume_start(false).unwrap(),
            Some(Start::After(end_of(40)))
        );
        assert!(c.accept_event(&event(42, 0)));
        c.progress(&progress(50));
        // Once an event went, the resume point is that event.
        assert_eq!(
            c.resume_start(false).unwrap(),
            Some(Start::After(pos(42, 0)))
        );

        // A time start ignores progress until an event arrives.
        let mut c = Cursor::new(Some(Start::Time(9)), false);
        c.progress(&progress(40));
        assert_eq!(c.resume_start(false).unwrap(), Some(Start::Time(9)));
    }

    #[test]
    fn a_known_consumer_resumes_from_its_cursor_and_still_drops_what_went() {
        let mut c = Cursor::new(Some(Start::Oldest), true);
        // Not yet created: the start as asked creates it.
        assert_eq!(c.resume_start(false).unwrap(), Some(Start::Oldest));
        assert!(c.accept_event(&event(7, 0)));
        assert_eq!(c.resume_start(true).unwrap(), None);
        // The node resumes after the acknowledged cursor, older than what went.
        assert!(!c.accept_event(&event(7, 0)));
        assert!(c.accept_event(&event(8, 0)));
    }

    #[test]
    fn a_snapshot_resumes_after_its_index_once_complete_and_not_midway() {
        let mut c = Cursor::new(Some(Start::Snapshot), false);
        let part = |last| pb::SnapshotPart {
            applied_index: 20,
            records: Vec::new(),
            last,
        };
        assert!(c.accept_snapshot(&part(false)));
        assert!(matches!(
            c.resume_start(false),
            Err(ClientError::SnapshotInterrupted(_))
        ));
        assert!(c.accept_snapshot(&part(true)));
        assert_eq!(
            c.resume_start(false).unwrap(),
            Some(Start::After(end_of(20)))
        );
        assert!(!c.accept_event(&event(20, 3)));
        assert!(c.accept_event(&event(21, 0)));
        assert!(!c.accept_snapshot(&part(true)));
    }
}
