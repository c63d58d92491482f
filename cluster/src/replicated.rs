//! The exchange as the application the Raft layer replicates ([`ExchangeApp`]): the
//! exchange's state machine behind `qastore-raft`'s [`Application`] trait, plus the pieces a
//! node needs to speak to it (the request of a command, the node type).
//!
//! Commands travel as their archived bytes (`Command::to_bytes`); applying decodes them, and a
//! command that does not decode is refused as an answer, the entry still counting.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::{
    olap, Ack, ClusterConfig, Command, EncodedWrite, EntryContent, ExchangeMachine, Response,
    SystemCommand,
};
use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointStore};
use qastore_lsm::{Engine, WriteBatch};
use qastore_raft::{AppError, Application, Applied, MakeBlob, Payload, RaftNode, Request};

use crate::config::FeedSection;
use crate::feed::LiveFeed;

/// A Raft node replicating the exchange.
pub type ExchangeNode = RaftNode<ExchangeApp>;

/// The exchange's replicated state machine, as the Raft layer drives it.
#[derive(Debug)]
pub struct ExchangeApp {
    machine: ExchangeMachine,
    live: Arc<LiveFeed>,
}

impl ExchangeApp {
    /// The live feed the machine announces applied entries to (what subscriptions follow).
    pub fn live(&self) -> &Arc<LiveFeed> {
        &self.live
    }

    /// The trading calendar in force (replicated; the built-in one until replaced).
    pub fn calendar(&self) -> Arc<TradingCalendar> {
        self.machine.calendar()
    }

    /// The cluster settings in force.
    pub fn settings(&self) -> Arc<ClusterConfig> {
        self.machine.settings()
    }

    /// The access table in force.
    pub fn access(&self) -> Arc<qastore_exchange::access::AccessTable> {
        self.machine.access()
    }

    /// How many durable consumers retention expired on this node since it started.
    pub fn consumers_expired(&self) -> u64 {
        self.machine.consumers_expired()
    }
}

/// The request carrying `command`.
pub fn request(command: &Command) -> Request {
    Request::from_bytes(command.to_bytes())
}

/// The largest entry applied on the runtime thread (a few records; see `applies_quickly`).
const QUICK_WRITE_BYTES: usize = 4 << 10;

/// The request of a client's checked write, and whether its ack level waits for every voter.
/// The entry carries the records' archive as the write made it: nothing encodes them again.
pub fn write_request(write: EncodedWrite) -> (Request, bool) {
    let all = write.ack == Ack::All;
    (Request::from_bytes(write.into_entry()), all)
}

/// The exchange's errors, engine failures kept typed so that damage is recognised.
fn app_error(e: qastore_exchange::Error) -> AppError {
    match e {
        qastore_exchange::Error::Engine(e) => AppError::Engine(e),
        other => AppError::other(other),
    }
}

impl Application for ExchangeApp {
    type Response = Response;

    fn open(engine: &Engine) -> Result<Self, AppError> {
        let machine = ExchangeMachine::open(engine).map_err(app_error)?;
        let defaults = FeedSection::default();
        let live = Arc::new(LiveFeed::new(
            defaults.live_buffer_events,
            defaults.live_buffer_bytes,
        ));
        machine.set_event_sink(live.clone());
        Ok(ExchangeApp { machine, live })
    }

    fn reload(&self, engine: &Engine) -> Result<(), AppError> {
        self.machine.reload(engine).map_err(app_error)
    }

    fn apply(
        &self,
        engine: &Engine,
        index: u64,
        payload: Payload<'_>,
        system: WriteBatch,
    ) -> Result<Applied<Response>, AppError> {
        let command = match payload {
            Payload::Command(bytes) => Some(Command::from_entry(bytes)),
            Payload::Nothing => None,
        };
        let content = match &command {
            Some(Ok(c)) => EntryContent::Command(c),
            Some(Err(e)) => EntryContent::Undecodable(e),
            None => EntryContent::NoCommand,
        };
        let response = self
            .machine
            .apply(engine, index, content, system)
            .map_err(app_error)?;
        Ok(Applied {
            response,
            hash_mark: matches!(command, Some(Ok(Command::System(SystemCommand::HashMark)))),
        })
    }

    fn already_applied(reason: String) -> Response {
        Response::Refused { reason }
    }

    fn hash_mark_command() -> Bytes {
        Command::System(SystemCommand::HashMark).to_bytes()
    }

    fn unhashed_prefixes() -> Vec<Vec<u8>> {
        // The trail records refused actions too: data compared before and after one must
        // read the same.
        vec![qastore_exchange::audit::key_prefix()]
    }

    /// A client's write of a few records; system commands may write files (a day's Parquet)
    /// and large batches take long enough that the blocking pool is the place for them.
    fn applies_quickly(&self, command: &[u8]) -> bool {
        command.len() <= QUICK_WRITE_BYTES && Command::is_client_write(command)
    }

    /// Carries the Parquet files, held still while they are linked.
    fn create_checkpoint(
        &self,
        store: &CheckpointStore,
        engine: &Engine,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo> {
        olap::create_checkpoint(store, engine, |read| make_blob(read))
    }

    /// Carries the Parquet files, held still while they are linked.
    fn write_checkpoint(
        &self,
        engine: &Engine,
        dir: &Path,
        make_blob: MakeBlob<'_>,
    ) -> qastore_lsm::Result<CheckpointInfo> {
        olap::write_checkpoint(engine, dir, |read| make_blob(read))
    }

    /// Deletes the Parquet files of partitions whose removal is durable.
    fn upkeep(&self, engine: &Engine) -> Result<(), AppError> {
        let swept = olap::sweep(engine).map_err(app_error)?;
        if swept.partitions_deleted > 0 {
            tracing::info!(
                partitions = swept.partitions_deleted,
                "removed partitions swept"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_exchange::record::{decode, samples};
    use qastore_lsm::vfs::OsVfs;
    use qastore_lsm::EngineConfig;

    #[test]
    fn a_write_s_request_is_its_archived_command() {
        let w = EncodedWrite::new("c1", 7, Ack::All, samples::records()).unwrap();
        let (req, all) = write_request(w.clone());
        assert!(all);
        assert_eq!(
            decode::<Command>(req.bytes()).unwrap(),
            Command::EncodedWrite(w.clone())
        );
        let (_, all) = write_request(EncodedWrite {
            ack: Ack::Quorum,
            ..w
        });
        assert!(!all);
    }

    #[test]
    fn undecodable_bytes_are_refused_and_a_hash_mark_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(OsVfs::shared(), dir.path(), EngineConfig::default()).unwrap();
        let app = ExchangeApp::open(&engine).unwrap();
        let junk = Bytes::from_static(b"not a command");
        let got = app
            .apply(&engine, 1, Payload::Command(&junk), WriteBatch::new())
            .unwrap();
        assert!(matches!(got.response, Response::Refused { .. }), "{got:?}");
        assert!(!got.hash_mark);
        let mark = ExchangeApp::hash_mark_command();
        let got = app
            .apply(&engine, 2, Payload::Command(&mark), WriteBatch::new())
            .unwrap();
        assert_eq!(got.response, Response::HashMarked);
        assert!(got.hash_mark);
        assert_eq!(engine.applied_index(), 2);
    }
}
