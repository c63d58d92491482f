//! The live feed: the events of recently applied batches, kept in memory for the streams that
//! follow the tail.
//!
//! The state machine announces every applied entry ([`EventSink`]) right after it became
//! visible to reads; the feed appends the entry's events to a bounded ring and wakes the
//! streams. Announcing never waits on a stream: the ring drops its oldest batches when it is
//! full, and a stream whose next events are gone reads them from the journal instead.
//!
//! The ring holds every event batch with a log index above its floor. After the engine is
//! replaced (a snapshot installed) nothing is known until the next entry is announced, so the
//! floor is taken again from there and streams find what came before in the journal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use qastore_exchange::feed::{CommittedBatch, EventSink, Position};
use tokio::sync::watch;

use super::convert;

/// How far a node has applied, as the live feed last heard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveMark {
    /// The last applied log index.
    pub index: u64,
    /// The commit time of the last write batch applied (0 if none was seen).
    pub commit_ns: i64,
}

/// A batch in the ring, with its events converted to the API's form once, however many streams
/// send them.
#[derive(Debug)]
pub struct LiveBatch {
    /// The batch.
    pub batch: Arc<CommittedBatch>,
    encoded: OnceLock<Vec<Bytes>>,
}

impl LiveBatch {
    /// The batch's events encoded in the API's form, in ordinal order: encoded once, by the
    /// first stream that sends them, and shared by every other.
    pub fn events_encoded(&self) -> &[Bytes] {
        self.encoded
            .get_or_init(|| convert::batch_encoded(&self.batch))
    }
}

/// What a stream gets from the ring.
#[derive(Debug)]
pub enum LiveRead {
    /// The batches after the cursor (those holding events after it), and the position the
    /// stream has covered once it has been through them.
    Batches {
        /// In log order; the first may hold events at or before the cursor, to be skipped.
        batches: Vec<Arc<LiveBatch>>,
        /// Everything up to here is in `batches` or was never there.
        through: Position,
    },
    /// The ring no longer holds (or never held) some events after the cursor: read the journal.
    Behind,
    /// More events wait for this stream than its buffer allows: read the journal.
    Lagging,
}

struct Slot {
    live: Arc<LiveBatch>,
    /// Events pushed into the ring before this batch, over the ring's life.
    events_before: u64,
    bytes_before: u64,
    events: usize,
    bytes: usize,
}

#[derive(Default)]
struct Ring {
    slots: VecDeque<Slot>,
    events: usize,
    bytes: usize,
    pushed_events: u64,
    pushed_bytes: u64,
    /// Every event batch above this index is in `slots`; `None` until the first entry after
    /// start-up or a reset is announced.
    floor: Option<u64>,
    last: u64,
}

/// The live feed of one node.
pub struct LiveFeed {
    ring: Mutex<Ring>,
    mark: watch::Sender<LiveMark>,
    max_events: AtomicUsize,
    max_bytes: AtomicUsize,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring.lock();
        f.debug_struct("LiveFeed")
            .field("batches", &ring.slots.len())
            .field("events", &ring.events)
            .field("floor", &ring.floor)
            .field("last", &ring.last)
            .finish()
    }
}

impl LiveFeed {
    /// An empty feed holding at most `max_events` events and `max_bytes` bytes.
    pub fn new(max_events: usize, max_bytes: usize) -> LiveFeed {
        LiveFeed {
            ring: Mutex::new(Ring::default()),
            mark: watch::channel(LiveMark::default()).0,
            max_events: AtomicUsize::new(max_events.max(1)),
            max_bytes: AtomicUsize::new(max_bytes.max(1)),
        }
    }

    /// Changes how much the ring holds (from the node's settings, once they are read).
    pub fn set_limits(&self, max_events: usize, max_bytes: usize) {
        self.max_events.store(max_events.max(1), Ordering::Relaxed);
        self.max_bytes.store(max_bytes.max(1), Ordering::Relaxed);
    }

    /// How far the node has applied.
    pub fn mark(&self) -> LiveMark {
        *self.mark.borrow()
    }

    /// Wakes on every announced entry.
    pub fn subscribe(&self) -> watch::Receiver<LiveMark> {
        self.mark.subscribe()
    }

    /// Events and bytes the ring holds.
    pub fn held(&self) -> (usize, usize) {
        let ring = self.ring.lock();
        (ring.events, ring.bytes)
    }

    /// The batches after `cursor`, looking at no more than `max_events` events; `Lagging` when
    /// more than `max_pending` events (or `max_pending_bytes` bytes) wait after the cursor.
    pub fn read_after(
        &self,
        cursor: Position,
        max_events: usize,
        max_pending: u64,
        max_pending_bytes: u64,
    ) -> LiveRead {
        let ring = self.ring.lock();
        let Some(floor) = ring.floor else {
            return LiveRead::Behind;
        };
        if cursor < Position::end_of(floor) {
            return LiveRead::Behind;
        }
        // The first batch that may hold events after the cursor.
        let first = ring.slots.partition_point(|s| {
            let index = s.live.batch.index;
            index < cursor.index || (index == cursor.index && cursor.ordinal == u32::MAX)
        });
        if let Some(s) = ring.slots.get(first) {
            let pending = ring.pushed_events - s.events_before;
            let pending_bytes = ring.pushed_bytes - s.bytes_before;
            if pending > max_pending || pending_bytes > max_pending_bytes {
                return LiveRead::Lagging;
            }
        }
        let mut batches = Vec::new();
        let mut looked = 0usize;
        let mut through = cursor.max(Position::end_of(ring.last));
        for s in ring.slots.iter().skip(first) {
            if looked >= max_events && !batches.is_empty() {
                through = Position::end_of(s.live.batch.index - 1).max(cursor);
                break;
            }
            looked += s.events;
            batches.push(s.live.clone());
        }
        LiveRead::Batches { batches, through }
    }

    fn push(&self, ring: &mut Ring, batch: Arc<CommittedBatch>) {
        let events = batch.events.len();
        let bytes = batch.approx_bytes();
        ring.slots.push_back(Slot {
            live: Arc::new(LiveBatch {
                batch,
                encoded: OnceLock::new(),
            }),
            events_before: ring.pushed_events,
            bytes_before: ring.pushed_bytes,
            events,
            bytes,
        });
        ring.events += events;
        ring.bytes += bytes;
        ring.pushed_events += events as u64;
        ring.pushed_bytes += bytes as u64;
        let (max_events, max_bytes) = (
            self.max_events.load(Ordering::Relaxed),
            self.max_bytes.load(Ordering::Relaxed),
        );
        while ring.slots.len() > 1 && (ring.events > max_events || ring.bytes > max_bytes) {
            let Some(old) = ring.slots.pop_front() else {
                break;
            };
            ring.events -= old.events;
            ring.bytes -= old.bytes;
            ring.floor = Some(old.live.batch.index);
        }
    }
}

impl EventSink for LiveFeed {
    fn applied(&self, index: u64, batch: Option<Arc<CommittedBatch>>) {
        let commit_ns = batch.as_ref().map(|b| b.commit_ns);
        {
            let mut ring = self.ring.lock();
            if ring.floor.is_none() {
                ring.floor = Some(index.saturating_sub(1));
            }
            if let Some(batch) = batch {
                if !batch.events.is_empty() {
                    self.push(&mut ring, batch);
                }
            }
            ring.last = index;
        }
        self.mark.send_modify(|m| {
            m.index = index;
            if let Some(t) = commit_ns.filter(|&t| t != 0) {
                m.commit_ns = t;
            }
        });
    }

    fn reset(&self) {
        let mut ring = self.ring.lock();
        ring.slots.clear();
        ring.events = 0;
        ring.bytes = 0;
        ring.floor = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_exchange::apply::Outcome;
    use qastore_exchange::feed::CommittedEvent;
    use qastore_exchange::record::samples;

    fn batch(index: u64, n: usize) -> Arc<CommittedBatch> {
        let record = samples::records().remove(0);
        Arc::new(CommittedBatch {
            index,
            commit_ns: index as i64 * 10,
            events: (0..n)
                .map(|i| CommittedEvent {
                    ordinal: i as u32,
                    record: record.clone(),
                    outcome: Outcome::OrderInserted { merged_updates: 0 },
                })
                .collect(),
        })
    }

    fn indexes(read: &LiveRead) -> (Vec<u64>, Position) {
        match read {
            LiveRead::Batches { batches, through } => {
                (batches.iter().map(|b| b.batch.index).collect(), *through)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stream_at_the_tail_gets_each_new_batch_and_entries_without_events_move_it_on() {
        let feed = LiveFeed::new(1000, 1 << 30);
        feed.applied(5, None);
        let tail = Position::end_of(5);
        assert_eq!(
            indexes(&feed.read_after(tail, 100, u64::MAX, u64::MAX)),
            (vec![], tail)
        );
        feed.applied(6, Some(batch(6, 3)));
        feed.applied(7, None);
        feed.applied(8, Some(batch(8, 2)));
        let (got, through) = indexes(&feed.read_after(tail, 100, u64::MAX, u64::MAX));
        assert_eq!(got, vec![6, 8]);
        assert_eq!(through, Position::end_of(8));
        // Part way into batch 6: batch 6 comes again, its early events to be skipped.
        let (got, _) = indexes(&feed.read_after(Position::new(6, 1), 100, u64::MAX, u64::MAX));
        assert_eq!(got, vec![6, 8]);
        assert_eq!(
            feed.mark(),
            LiveMark {
                index: 8,
                commit_ns: 80
            }
        );
    }

    #[test]
    fn a_stream_behind_the_floor_or_further_behind_than_its_buffer_reads_the_journal() {
        let feed = LiveFeed::new(10, 1 << 30);
        feed.applied(1, Some(batch(1, 4)));
        // Before start-up's first entry, nothing was seen.
        assert!(matches!(
            feed.read_after(Position::end_of(0), 100, u64::MAX, u64::MAX),
            LiveRead::Batches { .. }
        ));
        for i in 2..=4 {
            feed.applied(i, Some(batch(i, 4)));
        }
        // Twelve events were over the limit of ten: batches 1 and 2 went.
        assert_eq!(feed.held().0, 8);
        assert!(matches!(
            feed.read_after(Position::end_of(1), 100, u64::MAX, u64::MAX),
            LiveRead::Behind
        ));
        assert!(matches!(
            feed.read_after(Position::end_of(2), 100, 7, u64::MAX),
            LiveRead::Lagging
        ));
        let (got, _) = indexes(&feed.read_after(Position::end_of(2), 100, 8, u64::MAX));
        assert_eq!(got, vec![3, 4]);
    }

    #[test]
    fn a_reset_forgets_the_ring_until_the_next_entry() {
        let feed = LiveFeed::new(100, 1 << 30);
        feed.applied(1, Some(batch(1, 1)));
        feed.reset();
        assert!(matches!(
            feed.read_after(Position::end_of(1), 100, u64::MAX, u64::MAX),
            LiveRead::Behind
        ));
        feed.applied(50, Some(batch(50, 1)));
        assert!(matches!(
            feed.read_after(Position::end_of(1), 100, u64::MAX, u64::MAX),
            LiveRead::Behind
        ));
        let (got, _) = indexes(&feed.read_after(Position::end_of(49), 100, u64::MAX, u64::MAX));
        assert_eq!(got, vec![50]);
    }

    #[test]
    fn one_read_looks_at_a_bounded_number_of_events() {
        let feed = LiveFeed::new(1000, 1 << 30);
        feed.applied(1, None);
        for i in 2..=5 {
            feed.applied(i, Some(batch(i, 10)));
        }
        let (got, through) = indexes(&feed.read_after(Position::end_of(1), 15, u64::MAX, u64::MAX));
        assert_eq!(got, vec![2, 3]);
        assert_eq!(through, Position::end_of(3));
    }
}
