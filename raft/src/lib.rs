//! QAStore's Raft layer: the openraft adapter. This is the only crate that depends on
//! openraft. It knows nothing of what it replicates: an [`Application`] gives log entries their
//! meaning, as openraft's own examples let the application own its state machine.
//!
//! What is public, and why:
//!
//! * [`Application`] (with [`Payload`], [`Applied`], [`AppError`], [`RAFT_KEY_PREFIX`] and the
//!   checkpoint hooks' [`MakeBlob`] and [`CheckpointReader`]): what a replicated application
//!   implements: opening on the engine, applying one committed entry as one engine batch, what
//!   a checkpoint carries, its upkeep.
//! * [`RaftNode`] (with [`RaftNodeConfig`], [`RaftConfig`], [`NodeStatus`], [`Role`],
//!   [`WriteOutcome`], [`PeerStats`], [`Admitted`], [`DiskUse`], [`Overload`]): one node of an
//!   application put together (data directory identity, Raft, peer server over gRPC with the
//!   cluster id on every call, snapshots, repair) and the write/admin API the node's services
//!   use, answering in the application's own response type.
//! * [`Request`] and [`Reply`]: what a log entry carries (a command's bytes) and what applying
//!   it answers, type-erased, as openraft carries them.
//! * [`LogStore`] (the Raft log *is* the storage crate's write-ahead log) and [`StateMachine`]
//!   (committed entries applied to the storage engine, idempotently; snapshots are engine
//!   checkpoints): openraft's storage traits, public so openraft's conformance suite can run
//!   on them.
//! * [`types`]: the openraft type configuration ([`TypeConfig`], [`NodeId`], [`PeerNode`],
//!   [`LogId`], entries, votes).
//! * [`recovery`]: offline operator tools (forcing a new cluster from one node's data,
//!   restoring a backup).
//! * [`write_stages`]: where each acknowledged write's time went, stage by stage, as
//!   histograms the node serves.
//! * [`Error`] and [`Result`].
//!
//! Everything else (codecs, the peer network, repair, upkeep) is internal.

mod admission;
mod app_slot;
mod application;
mod codec;
mod command;
mod config;
mod damage;
mod engine_slot;
mod error;
mod follower_clock;
#[doc(hidden)]
pub mod fuzzing;
mod hash_marks;
mod identity;
mod leader_loss;
mod log_store;
mod maintenance;
mod network;
mod node;
mod read_index_batch;
pub mod recovery;
mod repair;
mod reply;
mod snapshot;
mod state_machine;
pub mod types;
pub mod write_stages;

/// The append stream's own framing on the peer port, for tools and tests that speak it.
pub mod append_stream {
    pub use crate::network::append_link::{Caller, Link, LinkPool, OpenError};
    pub use crate::network::append_wire::{Frame, H2_PREFACE, MAGIC};
}

pub use admission::{Admitted, DiskUse, Overload};
pub use application::{
    AppError, Application, Applied, CheckpointReader, MakeBlob, Payload, RAFT_KEY_PREFIX,
};
pub use command::Request;
pub use config::{AppendTransport, RaftConfig};
pub use error::{Error, Result};
pub use log_store::LogStore;
pub use network::PeerStats;
pub use node::{NodeStatus, RaftNode, RaftNodeConfig, Role, WriteOutcome};
pub use reply::Reply;
pub use state_machine::StateMachine;
pub use types::{LogId, NodeId, PeerNode, TypeConfig};
