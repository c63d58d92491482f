//! A QAStore node.
//!
//! * [`start`] (in [`server`]): runs a node from its [`config::NodeConfig`]: Raft and the
//!   engine, the gRPC API (`Store` for writes and reads at a chosen consistency, `Admin` for
//!   operators), write forwarding from followers to the leader, the disk quota, and the HTTP
//!   port with metrics, health and JSON admin routes.
//! * [`node`]: the state the services share ([`Node`]): Raft, the engine, the configuration,
//!   membership, readiness and default timeouts.
//!
//! The client library is the `qastore-client` crate; the process-cluster harness is the
//! `qastore-testkit` crate.

pub mod admin_service;
pub mod catch_up;
pub mod config;
pub mod convert;
pub mod deadline;
pub mod error;
pub mod forward;
pub mod http;
pub mod membership;
pub mod membership_watch;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod quota;
pub mod read;
pub mod recovery;
pub mod rpc_timing;
pub mod server;
pub mod store_service;

pub use config::NodeConfig;
pub use error::ApiError;
pub use node::Node;
pub use server::{start, RunningNode, StartError};
