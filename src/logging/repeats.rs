//! A tracing layer that keeps a flood of identical warnings from filling the log: the first
//! warning or error of a given (target, message) passes, the repeats within the window are
//! only counted, and when the window closes one line says how many there were.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The target of the summary lines, which are never counted themselves.
pub const SUMMARY_TARGET: &str = "qastore::log";

/// The rate-limiting layer; clones share their counts.
#[derive(Clone)]
pub struct Repeats {
    window: Duration,
    open: Arc<Mutex<HashMap<Key, Window>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    target: String,
    message: String,
}

/// One run of identical lines: when its first line passed and how many were held back since.
#[derive(Debug)]
struct Window {
    opened: Instant,
    level: Level,
    suppressed: u64,
}

/// A closed window that held lines back: what its summary line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The target of the repeated line.
    pub target: String,
    /// Its message.
    pub message: String,
    /// Its level.
    pub level: Level,
    /// How many times it was held back.
    pub repeated: u64,
    /// Over how long.
    pub over: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: \"{}\" repeated {} times in {:.0} s",
            self.target,
            self.message,
            self.repeated,
            self.over.as_secs_f64()
        )
    }
}

/// Collects an event's `message` field as text.
#[derive(Default)]
struct MessageOf(Option<String>);

impl Visit for MessageOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl fmt::Debug for Repeats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repeats")
            .field("window", &self.window)
            .finish()
    }
}

impl Repeats {
    /// A layer that summarises identical warnings once per `window`.
    pub fn new(window: Duration) -> Repeats {
        Repeats {
            window,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Whether one occurrence of `message` from `target` at `level` is written at `now`.
    pub fn admit(&self, level: Level, target: &str, message: &str, now: Instant) -> bool {
        // Only warnings and errors flood; INFO and below often repeat a fixed message with
        // varying fields, and each of those lines matters.
        if level > Level::WARN || target == SUMMARY_TARGET {
            return true;
        }
        let key = Key {
            target: target.to_string(),
            message: message.to_string(),
        };
        let mut open = self.open.lock();
        match open.get_mut(&key) {
            Some(w) => {
                w.suppressed += 1;
                false
            }
            None => {
                open.insert(
                    key,
                    Window {
                        opened: now,
                        level,
                        suppressed: 0,
                    },
                );
                true
            }
        }
    }

    /// Closes every window older than the window length at `now` and returns the summaries of
    /// those that held lines back; the next occurrence of a closed one passes again.
    pub fn close_expired(&self, now: Instant) -> Vec<Summary> {
        let mut summaries = Vec::new();
        self.open.lock().retain(|key, w| {
            let age = now.saturating_duration_since(w.opened);
            if age < self.window {
                return true;
            }
            if w.suppressed > 0 {
                summaries.push(Summary {
                    target: key.target.clone(),
                    message: key.message.clone(),
                    level: w.level,
                    repeated: w.suppressed,
                    over: age,
                });
            }
            false
        });
        summaries.sort_by(|a, b| (&a.target, &a.message).cmp(&(&b.target, &b.message)));
        summaries
    }

    /// Closes the expired windows and writes their summaries through the current subscriber.
    pub fn flush(&self, now: Instant) {
        for s in self.close_expired(now) {
            if s.level == Level::ERROR {
                tracing::error!(target: SUMMARY_TARGET, repeated = s.repeated, "{s}");
            } else {
                tracing::warn!(target: SUMMARY_TARGET, repeated = s.repeated, "{s}");
            }
        }
    }

    /// Starts a thread that flushes the windows several times per window length. The
    /// summaries must be written from outside any logging call, so a thread of its own does it.
    pub fn spawn_flusher(&self) {
        let me = self.clone();
        let tick = (self.window / 4).max(Duration::from_millis(100));
        let spawned = std::thread::Builder::new()
            .name("log-repeats".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                me.flush(Instant::now());
            });
        if let Err(e) = spawned {
            tracing::warn!("repeated log lines will not be summarised: {e}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Repeats {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::WARN {
            return true;
        }
        let mut message = MessageOf::default();
        event.record(&mut message);
        self.admit(
            *meta.level(),
            meta.target(),
            message.0.as_deref().unwrap_or(""),
            Instant::now(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_first_passes_repeats_are_counted_and_summarised_once() {
        let r = Repeats::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(r.admit(Level::WARN, "openraft::replication", "unreachable", t0));
        for _ in 0..999 {
            assert!(!r.admit(Level::WARN, "openraft::replication", "unreachable", t0));
        }
        // Another message, target or an INFO line is not held back by this run.
        assert!(r.admit(Level::WARN, "openraft::replication", "other", t0));
        assert!(r.admit(Level::WARN, "qastore_cluster::peers", "unreachable", t0));
        assert!(r.admit(Level::INFO, "openraft::replication", "unreachable", t0));
        assert!(r.admit(Level::INFO, "openraft::replication", "unreachable", t0));
        // Not yet expired: nothing to say.
        assert!(r.close_expired(t0 + Duration::from_secs(5)).is_empty());
        let s = r.close_expired(t0 + Duration::from_secs(10));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].repeated, 999);
        assert_eq!(s[0].target, "openraft::replication");
        assert!(s[0].to_string().contains("repeated 999 times"), "{}", s[0]);
        // The windows without repeats close silently, and a closed run starts again.
        assert!(r.close_expired(t0 + Duration::from_secs(30)).is_empty());
        let t1 = t0 + Duration::from_secs(31);
        assert!(r.admit(Level::WARN, "openraft::replication", "unreachable", t1));
        assert!(!r.admit(Level::WARN, "openraft::replication", "unreachable", t1));
        let s = r.close_expired(t1 + Duration::from_secs(10));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].repeated, 1);
    }

    #[test]
    fn errors_are_limited_and_summaries_pass() {
        let r = Repeats::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(r.admit(Level::ERROR, "x", "disk full", t0));
        assert!(!r.admit(Level::ERROR, "x", "disk full", t0));
        for _ in 0..3 {
            assert!(r.admit(Level::WARN, SUMMARY_TARGET, "same", t0));
        }
        let s = r.close_expired(t0 + Duration::from_secs(1));
        assert_eq!((s.len(), s[0].level), (1, Level::ERROR));
    }

    /// A writer into a shared buffer, for reading back what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_flood_through_a_subscriber_writes_one_line_and_one_count() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let repeats = Repeats::new(Duration::from_secs(3600));
        let subscriber = tracing_subscriber::registry().with(repeats.clone()).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5000 {
                tracing::warn!(target: "openraft::replication", "recv RPCError: Unreachable node 3");
            }
            tracing::info!("an info line");
            tracing::info!("an info line");
            repeats.flush(Instant::now() + Duration::from_secs(7200));
        });
        let text = String::from_utf8(buffer.0.lock().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("Unreachable node 3"))
                .count(),
            2,
            "{text}"
        );
        assert!(lines[3].contains("repeated 4999 times"), "{text}");
        assert!(lines[3].contains("WARN"), "{text}");
    }
}
