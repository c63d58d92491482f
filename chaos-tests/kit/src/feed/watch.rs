//! A live subscriber that records what its resuming subscription hands over (each event's
//! position and digest, and the furthest progress vouched for) until it is stopped, so that
//! it can be checked against the journal afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use qastore_client::{Client, Start, SubscribeOptions, SubscriptionItem};
use qastore_exchange::feed::Position;
use qastore_proto::v1 as pb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::check::{Received, Seen};

/// What a subscriber recorded, once stopped.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Its name (which node, which filter).
    pub name: String,
    /// Its filter.
    pub filter: pb::EventFilter,
    /// What it was handed.
    pub received: Received,
    /// The error the subscription ended with before it was stopped, if it did.
    pub ended: Option<String>,
    /// Whether it ended because the events it still needed had left the journal
    /// (OUT_OF_RANGE): a loud end, never a silent skip.
    pub ended_out_of_range: bool,
    /// Streams opened again after a failure.
    pub reconnects: u64,
    /// Events a resumed stream repeated, dropped by the client before they were handed over.
    pub repeats_dropped: u64,
}

/// A running subscriber.
#[derive(Debug)]
pub struct Watcher {
    name: String,
    covered: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Watched>,
}

impl Watcher {
    /// Subscribes through `client` with `options`, whose start must be after a position, and
    /// records until stopped.
    pub fn start(
        name: &str,
        client: &Client,
        options: SubscribeOptions,
    ) -> Result<Watcher, String> {
        let Some(Start::After(after)) = options.start_at().cloned() else {
            return Err(format!(
                "subscriber {name}: field start: must be after a position"
            ));
        };
        let after = Position::new(after.log_index, after.ordinal);
        let filter = options.filter().clone();
        let mut sub = client.subscribe(options);
        let covered = Arc::new(AtomicU64::new(after.index));
        let (stop, mut stopped) = oneshot::channel();
        let task_covered = covered.clone();
        let task_name = name.to_string();
        let task = tokio::spawn(async move {
            let mut received = Received {
                after,
                events: Vec::new(),
                vouched: None,
            };
            let mut ended = None;
            let mut ended_out_of_range = false;
            loop {
                let item = tokio::select! {
                    _ = &mut stopped => break,
                    item = sub.next() => item,
                };
                match item {
                    Some(Ok(SubscriptionItem::Event(e))) => {
                        if let Some(seen) = Seen::of(&e) {
                            task_covered.fetch_max(seen.position.index, Ordering::Relaxed);
                            received.events.push(seen);
                        }
                    }
                    Some(Ok(SubscriptionItem::Progress(p))) => {
                        if let Some(a) = p.applied {
                            let at = Position::new(a.log_index, a.ordinal);
                            received.vouched = received.vouched.max(Some(at));
                            task_covered.fetch_max(a.log_index, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(SubscriptionItem::Snapshot(_))) => {}
                    Some(Err(e)) => {
                        tracing::warn!(subscriber = %task_name, error = %e, "subscription ended");
                        ended_out_of_range = e.code() == Some(tonic::Code::OutOfRange);
                        ended = Some(e.to_string());
                        break;
                    }
                    None => {
                        ended = Some("the subscription ended".into());
                        break;
                    }
                }
            }
            let stats = sub.stats();
            Watched {
                name: task_name,
                filter,
                received,
                ended,
                ended_out_of_range,
                reconnects: stats.reconnects,
                repeats_dropped: stats.duplicates_dropped,
            }
        });
        Ok(Watcher {
            name: name.to_string(),
            covered,
            stop,
            task,
        })
    }

    /// The log index up to which the subscriber has everything (events or progress).
    pub fn covered(&self) -> u64 {
        self.covered.load(Ordering::Relaxed)
    }

    /// Waits up to `within` for the subscriber to cover log index `index`, then stops it.
    /// One that does not get there in time is stopped all the same: the check covers what it
    /// received.
    pub async fn stop_at(self, index: u64, within: Duration) -> Result<Watched, String> {
        let started = Instant::now();
        while self.covered() < index && started.elapsed() < within && !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| format!("subscriber {}: {e}", self.name))
    }
}
