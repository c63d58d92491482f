//! Helpers for tests that run Raft nodes of the exchange on loopback, in-process.

#![allow(dead_code)]

/// The Raft tests' in-process cluster harness, the same file.
#[path = "../../../raft/tests/support/harness.rs"]
pub mod harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qastore_cluster::{request, write_request, ExchangeApp, ExchangeNode};
use qastore_exchange::apply::Outcome;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::query::Queries;
use qastore_exchange::record::Record;
use qastore_exchange::{Ack, EncodedWrite, Response, SystemCommand, WriteCommand};
use qastore_raft::WriteOutcome;
use tokio::sync::watch;
use tokio::task::JoinHandle;

// Each test file uses some of these.
#[allow(unused_imports)]
pub use harness::{config, free_port, init_tracing, settings, TestApp, SERIAL, WAIT};

/// A started exchange node runs the exchange's schedule of system commands beside Raft.
impl TestApp for ExchangeApp {
    fn companion(node: Arc<ExchangeNode>, stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
        Some(qastore_cluster::schedule::spawn(node, stop))
    }
}

/// A cluster of exchange nodes.
pub type Cluster = harness::Cluster<ExchangeApp>;

/// The outcomes the journal holds for the write applied at `index`, in record order.
pub fn journal_outcomes(engine: &qastore_lsm::Engine, index: u64) -> Vec<Outcome> {
    Queries::new(engine)
        .journal(index, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.log_index == index)
        .map(|e| e.outcome)
        .collect()
}

/// Realistic exchange batches, 50 records each.
pub fn batches(n: usize, seed_day: u32) -> Vec<Vec<Record>> {
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 4,
            users: 20,
            order_rate: 0.3,
            ..GenConfig::default()
        },
        TradingCalendar::builtin(),
    );
    let records: Vec<Record> = gen.trading_day(seed_day).into_iter().flatten().collect();
    records.chunks(50).take(n).map(<[Record]>::to_vec).collect()
}

static REQUEST: AtomicU64 = AtomicU64::new(1);

/// A write of `records` with a fresh request id.
pub fn write(records: Vec<Record>) -> WriteCommand {
    WriteCommand::new(
        "test-client",
        REQUEST.fetch_add(1, Ordering::Relaxed),
        Ack::Quorum,
        records,
    )
}

/// Exchange commands proposed through a Raft node, as the node's services propose them.
#[allow(async_fn_in_trait)]
pub trait ExchangeCommands {
    /// Proposes a client's write (without checking it), waiting for every voter at ack
    /// level `ALL`.
    async fn write_cmd(
        &self,
        cmd: WriteCommand,
        timeout: Duration,
    ) -> qastore_raft::Result<WriteOutcome<Response>>;

    /// Proposes a system command.
    async fn propose_cmd(
        &self,
        cmd: SystemCommand,
        timeout: Duration,
    ) -> qastore_raft::Result<(u64, Response)>;
}

impl ExchangeCommands for ExchangeNode {
    async fn write_cmd(
        &self,
        cmd: WriteCommand,
        timeout: Duration,
    ) -> qastore_raft::Result<WriteOutcome<Response>> {
        // The checks a node's write path runs before proposing, refused the way it refuses.
        let checked = EncodedWrite::new(&cmd.client_id, cmd.request_id, cmd.ack, cmd.records)
            .map_err(|e| qastore_raft::Error::InvalidArgument(e.to_string()))?;
        let (req, all_voters) = write_request(checked);
        self.write(req, all_voters, timeout).await
    }

    async fn propose_cmd(
        &self,
        cmd: SystemCommand,
        timeout: Duration,
    ) -> qastore_raft::Result<(u64, Response)> {
        self.propose(request(&qastore_exchange::Command::System(cmd)), timeout)
            .await
    }
}
