//! QAStore's Raft layer: the openraft adapter. This is the only crate that depends on
//! openraft.
//!
//! What is public, and why:
//!
//! * [`RaftNode`] (with [`RaftNodeConfig`], [`RaftConfig`], [`NodeStatus`], [`Role`],
//!   [`WriteOutcome`], [`PeerStats`]): one node put together (data directory identity, Raft,
//!   peer server over gRPC with the cluster id on every call, snapshot and system-command
//!   schedules) and the write/admin API the node's services use.
//! * [`Command`] and its parts ([`WriteCommand`], [`SystemCommand`], [`Ack`], [`StreamKind`]),
//!   [`Request`] and [`Response`]: what a log entry carries and what applying it answers.
//! * [`ClusterConfig`]: the cluster-wide settings every node applies at the same log index.
//! * [`LogStore`] (the Raft log *is* the storage crate's write-ahead log) and [`StateMachine`]
//!   (committed entries applied to the storage engine, idempotently; snapshots are engine
//!   checkpoints): openraft's storage traits, public so openraft's conformance suite can run
//!   on them.
//! * [`types`]: the openraft type configuration ([`TypeConfig`], [`NodeId`], [`PeerNode`],
//!   [`LogId`], entries, votes).
//! * [`recovery`]: offline operator tools (forcing a new cluster from one node's data,
//!   restoring a backup).
//! * [`Error`] and [`Result`].
//!
//! Everything else (codecs, the peer network, repair, schedules) is internal.

mod admission;
mod codec;
mod command;
mod config;
mod damage;
mod engine_slot;
mod error;
mod follower_clock;
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
mod schedule;
mod snapshot;
mod state_machine;
pub mod types;

pub use admission::{Admitted, DiskUse, Overload};
pub use command::{Ack, Command, Request, Response, StreamKind, SystemCommand, WriteCommand};
pub use config::RaftConfig;
pub use error::{Error, Result};
pub use log_store::LogStore;
pub use network::PeerStats;
pub use node::{NodeStatus, RaftNode, RaftNodeConfig, Role, WriteOutcome};
pub use qastore_exchange::ClusterConfig;
pub use state_machine::StateMachine;
pub use types::{LogId, NodeId, PeerNode, TypeConfig};
