//! Subscriptions side by side: a QAStore cluster's Feed service, etcd watches and NATS JetStream
//! push consumers, each three processes on loopback under the same fixed-rate write load.
//!
//! * [`FeedSystem`]: what the benchmark needs of a cluster: batched writes, subscribers on a
//!   chosen node that deliver into a [`tap::Tap`], and kill / restart.
//! * [`pacer`]: the fixed-rate writer; every record carries its sequence number and send time
//!   ([`stamp`]).
//! * [`rows`]: fan-out with 1..N subscribers, replay from the oldest retained event, and resume
//!   after the subscriber's node is killed; [`report`]: the table.

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "nats")]
pub mod nats;
pub mod pacer;
pub mod qastore;
pub mod report;
pub mod rows;
pub mod stamp;
pub mod tap;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stamp::Stamp;
use tap::Tap;

/// Where a new subscriber starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only events written after it starts.
    Tail,
    /// The oldest event the system still holds.
    Oldest,
}

/// A running subscriber; dropping it ends the subscription.
pub struct Subscription {
    task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    /// Runs `body` as the subscriber.
    pub fn spawn(body: impl Future<Output = ()> + Send + 'static) -> Subscription {
        Subscription {
            task: tokio::spawn(body),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One cluster under test, nodes numbered from 0.
pub trait FeedSystem: Send + Sync + 'static {
    /// Its name in the report.
    fn name(&self) -> &'static str;

    /// How many nodes it has.
    fn nodes(&self) -> usize;

    /// The nodes in the order subscribers are placed on them: followers first, the leader
    /// last.
    fn placement(&self) -> impl Future<Output = Result<Vec<usize>, String>> + Send;

    /// Writes one batch of records, each carrying its stamp, in the system's batching path;
    /// answers once a quorum has it.
    fn write(&self, batch: Vec<Stamp>) -> impl Future<Output = Result<(), String>> + Send;

    /// Starts a subscriber on `node` that delivers every event into `tap`. With `resume`, when
    /// its stream breaks it goes on at another node right after the last event it delivered.
    fn subscribe(&self, node: usize, start: Start, resume: bool, tap: Arc<Tap>) -> Subscription;

    /// Kills node `node` (SIGKILL).
    fn kill(&self, node: usize) -> Result<(), String>;

    /// Starts node `node` again on its data.
    fn restart(&self, node: usize) -> Result<(), String>;

    /// Whether every node answers and the cluster can take writes.
    fn healthy(&self) -> impl Future<Output = bool> + Send;

    /// The process ids of the running nodes (for their CPU time).
    fn pids(&self) -> Vec<u32>;

    /// Stops every node and removes the cluster's files.
    fn shutdown(&self);
}

/// Waits until `sys` is healthy, for up to `limit`.
pub async fn wait_healthy<S: FeedSystem>(sys: &S, limit: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + limit;
    while !sys.healthy().await {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{} did not become healthy in {limit:?}",
                sys.name()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The node after `node` in a cluster of `nodes`: where a resuming subscriber tries next.
pub fn next_node(node: usize, nodes: usize) -> usize {
    (node + 1) % nodes.max(1)
}
