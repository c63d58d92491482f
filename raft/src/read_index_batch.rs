//! Sharing the leader's read index among a follower's concurrent linearizable reads.
//!
//! Each linearizable read on a follower needs an index from the leader that was confirmed with
//! a quorum *after* the read arrived. Rather than one call to the leader per read, reads are
//! gathered into rounds: one call at a time, and every read that arrives while a call is in
//! flight waits for the next call, which starts only after that read arrived. So each read
//! still gets an index confirmed after its arrival, and a busy follower makes one call per
//! round trip instead of one per read.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Answer = std::result::Result<u64, String>;

#[derive(Default)]
struct Rounds {
    running: bool,
    waiting: Vec<oneshot::Sender<Answer>>,
}

/// Gathers linearizable reads into rounds of one read-index call each.
#[derive(Clone, Default)]
pub struct ReadIndexBatch {
    rounds: Arc<Mutex<Rounds>>,
}

impl ReadIndexBatch {
    /// A batcher with no round running.
    pub fn new() -> Self {
        ReadIndexBatch::default()
    }

    /// The index this read must wait for, from a round started after it arrived, waiting at
    /// most `timeout`. `fetch` makes one call to the leader; when no round is running, this
    /// read's `fetch` runs the rounds until no read waits.
    pub async fn read_index<F, Fut>(&self, timeout: Duration, fetch: F) -> Result<u64>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<u64>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut r = self.rounds.lock();
            r.waiting.push(tx);
            !std::mem::replace(&mut r.running, true)
        };
        if start {
            let rounds = self.rounds.clone();
            // The rounds run on their own task so that a read giving up cannot stop them.
            tokio::spawn(run_rounds(rounds, fetch));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(index))) => Ok(index),
            Ok(Ok(Err(reason))) => Err(Error::NoLeader(reason)),
            Ok(Err(_)) => Err(Error::NoLeader("the read-index round was dropped".into())),
            Err(_) => Err(Error::NoLeader(
                "the leader did not confirm a read index in time".into(),
            )),
        }
    }
}

/// Runs rounds until no read waits: each round takes every read waiting at its start.
async fn run_rounds<F, Fut>(rounds: Arc<Mutex<Rounds>>, fetch: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<u64>> + Send + 'static,
{
    loop {
        let waiting = {
            let mut r = rounds.lock();
            if r.waiting.is_empty() {
                r.running = false;
                return;
            }
            std::mem::take(&mut r.waiting)
        };
        let answer: Answer = fetch().await.map_err(|e| match e {
            Error::NoLeader(reason) => reason,
            other => other.to_string(),
        });
        for w in waiting {
            let _ = w.send(answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_reads_share_calls_and_each_gets_a_call_started_after_it() {
        let batch = ReadIndexBatch::new();
        let calls = Arc::new(AtomicU64::new(0));
        let mut reads = Vec::new();
        for _ in 0..50 {
            let (batch, calls) = (batch.clone(), calls.clone());
            reads.push(tokio::spawn(async move {
                // The index a call returns is the number of calls started before it ended: a
                // read must see at least the count at its own arrival plus one.
                let seen_at_arrival = calls.load(Ordering::SeqCst);
                let index = batch
                    .read_index(Duration::from_secs(5), move || {
                        let calls = calls.clone();
                        async move {
                            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok(n)
                        }
                    })
                    .await
                    .unwrap();
                assert!(index > seen_at_arrival, "{index} <= {seen_at_arrival}");
            }));
        }
        for r in reads {
            r.await.unwrap();
        }
        let n = calls.load(Ordering::SeqCst);
        assert!((1..50).contains(&n), "{n} calls for 50 reads");
    }

    #[tokio::test]
    async fn a_failed_call_fails_its_round_and_the_next_round_runs() {
        let batch = ReadIndexBatch::new();
        let e = batch
            .read_index(Duration::from_secs(1), || async {
                Err(Error::NoLeader("gone".into()))
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
        let ok = batch
            .read_index(Duration::from_secs(1), || async { Ok(7) })
            .await
            .unwrap();
        assert_eq!(ok, 7);
    }
}
