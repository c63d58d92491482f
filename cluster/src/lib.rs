//! A QAStore node.
//!
//! What is public, and why:
//!
//! * [`start`]: runs a node from its [`NodeConfig`]: Raft and the engine, the gRPC API
//!   (`Store` for writes and reads at a chosen consistency, `Admin` for operators), write
//!   forwarding from followers to the leader, the disk quota, and the HTTP port with metrics,
//!   health and JSON admin routes. It answers a [`RunningNode`] to stop, or a [`StartError`].
//! * [`config`]: the node's settings file (`node.toml`) and its sections.
//! * [`feed`]: subscriptions: the live feed each node keeps of what it applies, and the
//!   `Feed` service's streams (public for tools and tests that follow a node in-process).
//! * [`recovery`]: the offline operator commands (forcing a new cluster, restoring a backup).
//! * [`convert`]: conversions between the API's messages and the storage crate's records, for
//!   tools and tests that build API requests from records.
//! * [`http`]: the JSON forms of the admin answers, shared with the command-line tool.
//! * [`ApiError`]: how a failed call maps to a gRPC status.
//! * [`ExchangeApp`]: the exchange as the application `qastore-raft` replicates (with
//!   [`ExchangeNode`], a Raft node of it, and [`request`] / [`write_request`], the log entry of
//!   an exchange command), for tools and tests that run Raft nodes of the exchange in-process;
//!   [`schedule`] runs such a node's scheduled system commands (Parquet conversion, retention)
//!   as a started node does.
//!
//! The services, membership watch, scheduled system commands, metrics and the rest are
//! internal. The client library is
//! the `qastore-client` crate; the process-cluster harness is the `qastore-testkit` crate.

mod access;
mod admin_service;
mod catch_up;
pub mod config;
pub mod convert;
mod deadline;
mod error;
pub mod feed;
mod forward;
pub mod http;
mod http_tls;
mod membership;
mod membership_watch;
mod metrics;
mod node;
mod peers;
mod quota;
mod read;
pub mod recovery;
mod replicated;
mod rpc_timing;
pub mod schedule;
mod server;
mod settings;
mod store_service;
mod write_groups;
mod write_stream;

pub use config::NodeConfig;
pub use error::ApiError;
pub use replicated::{request, write_request, ExchangeApp, ExchangeNode};
pub use server::{start, RunningNode, StartError};
