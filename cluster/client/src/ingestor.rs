//! The trading path's ingestor: `submit` never waits on the network or the disk. It puts the
//! record into a bounded queue (`try_send`) or fails at once when the queue is full, so the
//! caller can count and shed. A background task batches queued records by size (default 100)
//! or time (default 10 ms) into `Write` calls, many in flight at once (default 64: the leader
//! then logs, replicates and syncs many batches together), each retried through
//! leader changes with its own request id. Each record's completion can be awaited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qastore_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::ClientError;

/// How an ingestor batches.
#[derive(Debug, Clone)]
pub struct IngestorConfig {
    /// Records the queue holds; a `submit` beyond it fails at once.
    pub queue_capacity: usize,
    /// A batch is sent once it holds this many records...
    pub max_batch_records: usize,
    /// ...or once its first record has waited this long.
    pub max_batch_delay: Duration,
    /// Batches in flight at once. Enough to keep the leader's log busy: with few in flight a
    /// deep queue drains one small group of entries per fsync round.
    pub max_in_flight_batches: usize,
    /// The ack level of every write.
    pub ack: pb::AckLevel,
}

impl Default for IngestorConfig {
    fn default() -> Self {
        IngestorConfig {
            queue_capacity: 100_000,
            max_batch_records: 100,
            max_batch_delay: Duration::from_millis(10),
            max_in_flight_batches: 64,
            ack: pb::AckLevel::Quorum,
        }
    }
}

/// Why `submit` refused a record (it was not queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: the cluster is not keeping up, or is unreachable.
    #[error("the ingest queue is full")]
    QueueFull,
    /// The ingestor has been closed.
    #[error("the ingestor is closed")]
    Closed,
}

/// Where a record ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAck {
    /// The log index of its batch.
    pub log_index: u64,
    /// Its position in the batch.
    pub ordinal: u32,
    /// What applying it did.
    pub result: pb::RecordResult,
}

/// The completion of one submitted record: await it, or drop it if the answer is not needed.
pub type Completion = oneshot::Receiver<Result<RecordAck, Arc<ClientError>>>;

struct Item {
    record: pb::Record,
    done: Option<oneshot::Sender<Result<RecordAck, Arc<ClientError>>>>,
}

/// Counters of an ingestor.
#[derive(Debug, Default)]
pub struct Counters {
    submitted: AtomicU64,
    rejected: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    retried: AtomicU64,
}

/// A snapshot of an ingestor's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStats {
    /// Records accepted by `submit`.
    pub submitted: u64,
    /// Records refused by `submit` (queue full or closed).
    pub rejected: u64,
    /// Records acknowledged by the cluster.
    pub written: u64,
    /// Records whose batch failed for good.
    pub failed: u64,
    /// Batches acknowledged.
    pub batches: u64,
    /// Retries of batches (leader changes, elections, back-pressure).
    pub retried: u64,
    /// Records submitted but not yet acknowledged or failed.
    pub in_flight: u64,
}

/// The ingestor. Cheap to share behind an `Arc`; `submit` may be called from any thread.
#[derive(Debug)]
pub struct Ingestor {
    tx: mpsc::Sender<Item>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Item")
    }
}

impl Ingestor {
    /// Starts an ingestor writing through `client` (must be called inside a Tokio runtime).
    pub fn start(client: Arc<Client>, options: IngestorConfig) -> Ingestor {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(client, options, rx, counters.clone()));
        Ingestor { tx, counters, task }
    }

    fn enqueue(&self, item: Item) -> Result<(), SubmitError> {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.counters.submitted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
                })
            }
        }
    }

    /// Queues `record` and returns its completion; never waits.
    pub fn submit(&self, record: pb::Record) -> Result<Completion, SubmitError> {
        let (done, completion) = oneshot::channel();
        self.enqueue(Item {
            record,
            done: Some(done),
        })?;
        Ok(completion)
    }

    /// Queues `record` with nobody awaiting its completion (the cheapest call); never waits.
    pub fn submit_detached(&self, record: pb::Record) -> Result<(), SubmitError> {
        self.enqueue(Item { record, done: None })
    }

    /// The counters now.
    pub fn stats(&self) -> IngestStats {
        self.counters.snapshot()
    }

    /// Stops taking records, sends what is queued, and waits until every batch is answered.
    pub async fn close(self) -> IngestStats {
        let Ingestor { tx, counters, task } = self;
        drop(tx);
        let _ = task.await;
        counters.snapshot()
    }
}

impl Counters {
    fn snapshot(&self) -> IngestStats {
        let submitted = self.submitted.load(Ordering::Relaxed);
        let written = self.written.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        IngestStats {
            submitted,
            rejected: self.rejected.load(Ordering::Relaxed),
            written,
            failed,
            batches: self.batches.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            in_flight: submitted.saturating_sub(written + failed),
        }
    }
}

async fn run(
    client: Arc<Client>,
    options: IngestorConfig,
    mut rx: mpsc::Receiver<Item>,
    counters: Arc<Counters>,
) {
    let max = options.max_batch_records.max(1);
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight_batches.max(1)));
    let mut batches = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(max);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + options.max_batch_delay;
        while batch.len() < max {
            match rx.try_recv() {
                Ok(item) => {
                    batch.push(item);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (client, counters) = (client.clone(), counters.clone());
        let ack = options.ack;
        batches.spawn(async move {
            send(&client, batch, ack, &counters).await;
            drop(permit);
        });
        // Reap finished batches so the set does not grow.
        while batches.try_join_next().is_some() {}
    }
    while batches.join_next().await.is_some() {}
}

async fn send(client: &Client, batch: Vec<Item>, ack: pb::AckLevel, counters: &Counters) {
    let (records, dones): (Vec<pb::Record>, Vec<_>) =
        batch.into_iter().map(|i| (i.record, i.done)).unzip();
    let n = records.len() as u64;
    let id = client.next_request_id();
    match client.write_with_id(id, records, ack).await {
        Ok((resp, retries)) => {
            counters
                .retried
                .fetch_add(retries as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters.written.fetch_add(n, Ordering::Relaxed);
            for (i, done) in dones.into_iter().enumerate() {
                if let Some(done) = done {
                    let _ = done.send(Ok(RecordAck {
                        log_index: resp.log_index,
                        ordinal: i as u32,
                        result: resp.results.get(i).copied().unwrap_or_default(),
                    }));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, records = n, "an ingest batch failed");
            counters.failed.fetch_add(n, Ordering::Relaxed);
            let e = Arc::new(e);
            for done in dones.into_iter().flatten() {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}
