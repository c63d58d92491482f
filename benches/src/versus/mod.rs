//! A QAStore cluster and an etcd cluster, each three processes on loopback, driven by the same
//! load generator with the same keys and values, one system at a time.
//!
//! * [`System`]: what the benchmark needs of a cluster (writes, batched writes, follower reads, the
//!   leader, kill / restart / transfer); [`qastore::QaCluster`] and `etcd::EtcdCluster`.
//! * [`rows`]: the load rows (writes, batches, follower reads) and [`drill`]: kill-leader and
//!   planned-transfer trials.
//! * [`report`]: the side-by-side table, as text, JSON and Markdown.

pub mod drill;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod host;
pub mod qastore;
pub mod report;
pub mod rows;

use std::future::Future;
use std::time::Duration;

use xxhash_rust::xxh3::xxh3_64;

/// Keys written and read: 16 bytes each.
pub const KEY_SPACE: u64 = 100_000;

/// Records per batch in the batched-write row.
pub const BATCH: usize = 100;

/// What a written value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A 16-byte key and a 128-byte value (for QAStore: an account update of that size).
    Kv,
    /// A realistic exchange record (ticks, books, orders, fills, accounts, positions) from the
    /// workload generator; etcd stores its protobuf encoding.
    Exchange,
}

/// How a write at one node failed.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    /// The node the answer named as leader, if it named one.
    pub leader_hint: Option<usize>,
    /// Why.
    pub reason: String,
}

/// One cluster under test. Nodes are numbered from 0.
pub trait System: Send + Sync + 'static {
    /// Its name in the report.
    fn name(&self) -> &'static str;

    /// How many nodes it has.
    fn nodes(&self) -> usize;

    /// Writes one record of `shape` (key chosen by `worker` and `seq`), acknowledged once a
    /// quorum has it durably. Answers the records written.
    fn put(
        &self,
        worker: usize,
        seq: u64,
        shape: Shape,
    ) -> impl Future<Output = Result<u64, String>> + Send;

    /// The batched-write row through the system's best batching path: `clients` producers for
    /// `window`. QAStore feeds its ingestor; etcd runs transactions of [`BATCH`] puts.
    fn batched_row(
        &self,
        clients: usize,
        window: qastore_testkit::load::Window,
    ) -> impl Future<Output = qastore_testkit::load::LoadResult> + Send;

    /// Reads one key at node `node`: linearizable, or from the node's local state.
    fn read(
        &self,
        node: usize,
        worker: usize,
        seq: u64,
        linearizable: bool,
    ) -> impl Future<Output = Result<u64, String>> + Send;

    /// The node that leads now, as the nodes report it.
    fn leader(&self) -> impl Future<Output = Option<usize>> + Send;

    /// Writes one small record at node `node` with a deadline of `timeout` (no retries).
    fn write_at(
        &self,
        node: usize,
        seq: u64,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    /// Kills node `node` (SIGKILL).
    fn kill(&self, node: usize) -> Result<(), String>;

    /// Starts node `node` again on its data.
    fn restart(&self, node: usize) -> Result<(), String>;

    /// Hands leadership from `from` (the leader) to `to`.
    fn transfer(&self, from: usize, to: usize) -> impl Future<Output = Result<(), String>> + Send;

    /// Whether every node answers and all agree on one leader.
    fn healthy(&self) -> impl Future<Output = bool> + Send;

    /// The process ids of the running nodes (for the CPU they spend).
    fn pids(&self) -> Vec<u32>;

    /// The nodes' write-stage histograms now, where the system keeps them (QAStore).
    fn write_stages(&self) -> impl Future<Output = Option<qastore_client::StageCounts>> + Send {
        async { None }
    }

    /// Stops every node and removes the cluster's files.
    fn shutdown(&self);
}

/// The 16-byte key `n`.
pub fn key(n: u64) -> String {
    format!("k{:015}", n % KEY_SPACE)
}

/// The key number an operation touches: spread over [`KEY_SPACE`], the same for both systems.
pub fn key_number(worker: usize, seq: u64, salt: u64) -> u64 {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&(worker as u64).to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..].copy_from_slice(&salt.to_le_bytes());
    xxh3_64(&b) % KEY_SPACE
}

/// The keys of a batch: [`BATCH`] distinct neighbours (a transaction may not touch a key
/// twice).
pub fn batch_keys(worker: usize, seq: u64) -> impl Iterator<Item = u64> {
    let base = key_number(worker, seq, 0);
    (0..BATCH as u64).map(move |i| (base + i) % KEY_SPACE)
}

/// Waits until `sys` is healthy, for up to `limit`.
pub async fn wait_healthy<S: System>(sys: &S, limit: Duration) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes_and_spread() {
        assert_eq!(key(0).len(), 16);
        assert_eq!(key(KEY_SPACE - 1).len(), 16);
        let distinct: std::collections::BTreeSet<u64> =
            (0..1000).map(|s| key_number(3, s, 0)).collect();
        assert!(distinct.len() > 990);
    }
}
