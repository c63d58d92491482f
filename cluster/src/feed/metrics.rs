//! The feed's metrics: streams open, events sent, streams moved to the journal or cut off,
//! how far the furthest-behind stream lags, and what the live buffer holds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use metrics::{counter, gauge};
use parking_lot::Mutex;

use super::live::LiveFeed;

/// Where each open stream stands, for the lag gauges.
#[derive(Debug, Default)]
pub struct StreamLag {
    cursor_index: AtomicU64,
    commit_ns: AtomicI64,
}

impl StreamLag {
    /// The stream has seen everything up to log index `cursor_index`; the last event it took
    /// was committed at `commit_ns` (0 if unknown).
    pub fn set(&self, cursor_index: u64, commit_ns: i64) {
        self.cursor_index.store(cursor_index, Ordering::Relaxed);
        if commit_ns != 0 {
            self.commit_ns.store(commit_ns, Ordering::Relaxed);
        }
    }
}

static OPEN: Mutex<BTreeMap<u64, Arc<StreamLag>>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Counts a stream as open while it lives.
#[derive(Debug)]
pub struct StreamGauge {
    id: u64,
    lag: Arc<StreamLag>,
}

impl StreamGauge {
    /// A stream opened.
    pub fn open() -> StreamGauge {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let lag = Arc::new(StreamLag::default());
        let mut open = OPEN.lock();
        open.insert(id, lag.clone());
        gauge!("qastore_feed_streams").set(open.len() as f64);
        StreamGauge { id, lag }
    }

    /// Where the stream's lag is recorded.
    pub fn lag(&self) -> &StreamLag {
        &self.lag
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        let mut open = OPEN.lock();
        open.remove(&self.id);
        gauge!("qastore_feed_streams").set(open.len() as f64);
    }
}

/// Events sent to subscribers, and their encoded bytes.
pub fn events_sent(events: usize, bytes: usize) {
    counter!("qastore_feed_events_sent_total").increment(events as u64);
    counter!("qastore_feed_bytes_sent_total").increment(bytes as u64);
}

/// A stream fell out of the live buffer and reads the journal.
pub fn moved_to_journal() {
    counter!("qastore_feed_streams_moved_to_journal_total").increment(1);
}

/// A stream was cut off: the events it needed left the journal.
pub fn stream_cut() {
    counter!("qastore_feed_streams_cut_total").increment(1);
}

/// Samples the live buffer and the furthest-behind stream, against the node's last applied
/// index and commit time.
pub fn sample(live: &LiveFeed) {
    let mark = live.mark();
    let (events, bytes) = live.held();
    gauge!("qastore_feed_live_buffer_events").set(events as f64);
    gauge!("qastore_feed_live_buffer_bytes").set(bytes as f64);
    let (mut entries, mut seconds) = (0u64, 0f64);
    for lag in OPEN.lock().values() {
        let cursor = lag.cursor_index.load(Ordering::Relaxed);
        let behind = mark.index.saturating_sub(cursor);
        entries = entries.max(behind);
        let at = lag.commit_ns.load(Ordering::Relaxed);
        if behind > 0 && at != 0 && mark.commit_ns > at {
            seconds = seconds.max((mark.commit_ns - at) as f64 / 1e9);
        }
    }
    gauge!("qastore_feed_stream_lag_entries_max").set(entries as f64);
    gauge!("qastore_feed_stream_lag_seconds_max").set(seconds);
}
