//! The fixed-rate writer: every interval it sends one batch of records, each stamped with its
//! sequence number and the send time, with a bounded number of batches in flight. A batch that
//! fails is not sent again (a retried record could reach the log twice and look like a
//! duplicate delivery); it is counted and left out of what subscribers must receive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::stamp::{now_ns, Stamp};
use super::FeedSystem;

/// The writer's settings.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Records per second.
    pub records_per_sec: u64,
    /// Records per batch.
    pub batch: usize,
    /// The most batches in flight; when all are, due batches are skipped.
    pub in_flight: usize,
}

impl Rate {
    /// The time between two batches.
    pub fn interval(&self) -> Duration {
        let per_sec = self.records_per_sec.max(1) as f64;
        Duration::from_secs_f64(self.batch.max(1) as f64 / per_sec).max(Duration::from_micros(50))
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    next_seq: AtomicU64,
    acked_records: AtomicU64,
    failed_batches: AtomicU64,
    skipped_batches: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Acknowledged sequence numbers (when kept).
    acked: Mutex<Vec<u64>>,
}

/// A running writer.
pub struct Pacer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// What a writer did, once stopped.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Acknowledged sequence numbers, unordered (only when kept).
    pub acked: Vec<u64>,
    /// Records acknowledged.
    pub acked_records: u64,
    /// Batches that failed.
    pub failed_batches: u64,
    /// Batches not sent because too many were in flight.
    pub skipped_batches: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Pacer {
    /// Starts writing to `sys` at `rate`, sequence numbers from `first_seq`; `keep_acked` keeps
    /// every acknowledged sequence number.
    pub fn start<S: FeedSystem>(
        sys: Arc<S>,
        rate: Rate,
        first_seq: u64,
        keep_acked: bool,
    ) -> Pacer {
        let shared = Arc::new(Shared::default());
        shared.next_seq.store(first_seq, Ordering::SeqCst);
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(rate.in_flight.max(1)));
            let mut ticks = tokio::time::interval(rate.interval());
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut writes = tokio::task::JoinSet::new();
            while !sh.stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                while writes.try_join_next().is_some() {}
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    sh.skipped_batches.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let first = sh.next_seq.fetch_add(rate.batch as u64, Ordering::SeqCst);
                let sent_ns = now_ns();
                let batch: Vec<Stamp> = (first..first + rate.batch as u64)
                    .map(|seq| Stamp { seq, sent_ns })
                    .collect();
                let (sys, sh) = (sys.clone(), sh.clone());
                writes.spawn(async move {
                    let outcome = sys.write(batch).await;
                    drop(slot);
                    match outcome {
                        Ok(()) => {
                            sh.acked_records
                                .fetch_add(rate.batch as u64, Ordering::Relaxed);
                            if keep_acked {
                                if let Ok(mut a) = sh.acked.lock() {
                                    a.extend(first..first + rate.batch as u64);
                                }
                            }
                        }
                        Err(e) => {
                            sh.failed_batches.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = sh.first_error.lock() {
                                if f.is_none() {
                                    *f = Some(e);
                                }
                            }
                        }
                    }
                });
            }
            while writes.join_next().await.is_some() {}
        });
        Pacer { shared, task }
    }

    /// The sequence number the next batch will start at: every batch sent from now on carries
    /// this one or higher.
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq.load(Ordering::SeqCst)
    }

    /// Records acknowledged so far.
    pub fn acked_records(&self) -> u64 {
        self.shared.acked_records.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for the batches in flight, and answers what was written.
    pub async fn stop(self) -> Written {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let sh = &self.shared;
        Written {
            acked: sh.acked.lock().map(|a| a.clone()).unwrap_or_default(),
            acked_records: sh.acked_records.load(Ordering::Relaxed),
            failed_batches: sh.failed_batches.load(Ordering::Relaxed),
            skipped_batches: sh.skipped_batches.load(Ordering::Relaxed),
            first_error: sh.first_error.lock().ok().and_then(|f| f.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_spreads_the_rate_over_batches() {
        let r = Rate {
            records_per_sec: 20_000,
            batch: 100,
            in_flight: 8,
        };
        assert_eq!(r.interval(), Duration::from_millis(5));
    }
}
