//! Batches of records for the bench's writers, made ahead of time on a thread of their own.
//!
//! The workload generates a whole trading day at once, a second or more of CPU. Made inside a
//! writer's call, that time counted as the write's latency and held up every other writer; in
//! a one-second window with no warm-up, the first write outlasted the window and the bench
//! reported 0 operations per second. Made here, the first day is ready before measuring starts
//! and later days are made while the writers drain what is queued.

use qastore_proto::v1 as pb;
use qastore_testkit::workload::Workload;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Ready batches, refilled by a generator thread.
pub struct RecordFeed {
    batches: Mutex<mpsc::Receiver<Vec<pb::Record>>>,
    primed: Mutex<Option<oneshot::Receiver<()>>>,
}

impl RecordFeed {
    /// Starts a thread cutting `workload` into batches of `batch` records, keeping up to
    /// `ahead` batches ready. It ends when the feed is dropped.
    pub fn start(mut workload: Workload, batch: usize, ahead: usize) -> Result<Self, String> {
        let ahead = ahead.max(1);
        let (tx, rx) = mpsc::channel(ahead);
        let (primed_tx, primed_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("bench-records".into())
            .spawn(move || {
                let mut primed = Some(primed_tx);
                let mut sent = 0usize;
                loop {
                    let records: Vec<pb::Record> =
                        (0..batch.max(1)).map(|_| workload.next_pb()).collect();
                    if tx.blocking_send(records).is_err() {
                        return;
                    }
                    sent += 1;
                    if sent >= ahead {
                        if let Some(p) = primed.take() {
                            let _ = p.send(());
                        }
                    }
                }
            })
            .map_err(|e| format!("starting the record generator: {e}"))?;
        Ok(RecordFeed {
            batches: Mutex::new(rx),
            primed: Mutex::new(Some(primed_rx)),
        })
    }

    /// Waits until the queue is full for the first time.
    pub async fn primed(&self) -> Result<(), String> {
        if let Some(p) = self.primed.lock().await.take() {
            p.await
                .map_err(|_| "the record generator stopped".to_string())?;
        }
        Ok(())
    }

    /// The next batch.
    pub async fn next(&self) -> Result<Vec<pb::Record>, String> {
        self.batches
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| "the record generator stopped".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_are_ready_before_they_are_asked_for() {
        let feed = RecordFeed::start(Workload::new(1, 2, 3), 7, 4).unwrap();
        feed.primed().await.unwrap();
        // The first day was generated while priming: taking the queued batches is immediate.
        for _ in 0..4 {
            let b = tokio::time::timeout(std::time::Duration::from_millis(50), feed.next())
                .await
                .expect("a queued batch")
                .unwrap();
            assert_eq!(b.len(), 7);
        }
    }
}
