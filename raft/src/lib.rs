//! QAStore's Raft layer: the openraft adapter.
//!
//! * [`log_store::LogStore`]: the Raft log *is* the storage crate's write-ahead log.
//! * [`state_machine::StateMachine`]: committed entries applied to the storage engine, with
//!   idempotent writes; snapshots are engine checkpoints ([`snapshot`]).
//! * [`network`]: the peer service and its client over gRPC (tonic), with the cluster id on
//!   every call.
//! * [`node::RaftNode`]: one node put together: data directory identity, Raft, peer server,
//!   snapshot and system-command schedules, and the write/admin API the node's services use.
//!
//! This is the only crate that depends on openraft.

pub mod codec;
pub mod command;
pub mod config;
pub mod damage;
pub mod engine_slot;
pub mod error;
pub mod follower_clock;
pub mod hash_marks;
pub mod identity;
pub mod leader_loss;
pub mod log_store;
pub mod maintenance;
pub mod network;
pub mod node;
pub mod read_index_batch;
pub mod recovery;
pub mod repair;
pub mod schedule;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use command::{Ack, Command, Request, Response, SystemCommand, WriteCommand};
pub use config::RaftConfig;
pub use error::{Error, Result};
pub use node::{NodeStatus, RaftNode, RaftNodeConfig, Role, WriteOutcome};
pub use qastore_exchange::ClusterConfig;
pub use types::{LogId, NodeId, PeerNode, TypeConfig};
