//! A QAStore node and its client library.
//!
//! * [`node::start`]: runs a node from its [`config::NodeConfig`]: Raft and the engine, the
//!   gRPC API (`Store` for writes and reads at a chosen consistency, `Admin` for operators),
//!   write forwarding from followers to the leader, the disk quota, and the HTTP port with
//!   metrics, health and JSON admin routes.
//! * [`drill`]: failover drills (planned and kill) with their measurements and verdict.
//! * [`client`]: the client library: leader discovery, retries with the same request id, and
//!   the trading path's non-blocking [`client::Ingestor`].

pub mod admin_service;
pub mod catch_up;
pub mod client;
pub mod config;
pub mod convert;
pub mod deadline;
pub mod drill;
pub mod error;
pub mod http;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod quota;
pub mod read;
pub mod recovery;
pub mod rpc_timing;
pub mod store_service;

pub use config::NodeConfig;
pub use error::ApiError;
pub use node::{start, Node, RunningNode, StartError};
