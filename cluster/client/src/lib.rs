//! The QAStore client library. It depends only on the public gRPC API (`qastore-proto`), so
//! an application that writes to or reads from a cluster links no Raft and no storage engine.
//!
//! * [`Client`]: talks to any nodes of a cluster, finds the leader, and retries writes through
//!   leader changes with the same request id and the same batch, so a write is applied once
//!   however often it is retried. Every call has a deadline.
//! * [`Ingestor`]: the trading path's non-blocking `submit` into a bounded queue, batched into
//!   writes in the background.
//! * [`Subscription`] (from [`Client::subscribe`] with [`SubscribeOptions`]): the committed
//!   event stream, served by followers first and resumed on another node when one fails, so
//!   the caller sees every matching event once, in position order. The durable consumer calls
//!   (`create_consumer`, `ack`, `list_consumers`, `consumer`, `delete_consumer`) go to any node.
//! * [`StageCounts`] (from [`Client::write_stages`]): where the cluster's writes spend their
//!   time, stage by stage; two readings give a window's percentiles ([`StageSummary`]).
//! * [`drill`]: failover drills (planned and kill), their measurements and verdict.
//! * [`ClientError`]: why a call failed (a node's error status, a bad endpoint, no leader).
//!
//! Leader tracking and the retry policy are internal.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use qastore_client::{Client, ClientConfig, Ingestor, IngestorConfig, SubmitError};
//! use qastore_proto::v1 as pb;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let endpoints = vec!["10.0.0.1:7001".to_string(), "10.0.0.2:7001".to_string()];
//!     let client = Arc::new(Client::new(&endpoints, ClientConfig::default())?);
//!     let ingestor = Ingestor::start(client.clone(), IngestorConfig::default());
//!     let tick = pb::Record {
//!         kind: Some(pb::record::Kind::Tick(pb::Tick {
//!             instrument_id: "rb2501".into(),
//!             last_price: 3500.0,
//!             ..Default::default()
//!         })),
//!     };
//!     // `submit` never waits on the network: a full queue is refused at once.
//!     match ingestor.submit(tick) {
//!         Ok(done) => println!("written at log index {}", done.await??.log_index),
//!         Err(SubmitError::QueueFull) => eprintln!("the cluster is not keeping up"),
//!         Err(SubmitError::Closed) => {}
//!     }
//!     let (leader, addr) = client.find_leader().await?;
//!     println!("node {leader} at {addr} leads; {:?}", ingestor.close().await);
//!     Ok(())
//! }
//! ```

mod client;
mod connector;
pub mod drill;
mod error;
mod feed;
mod ingestor;
mod retry;
mod stages;
mod tls;
mod write_streams;

pub use client::{Client, ClientConfig};
pub use connector::{CallCredentials, Connection};
pub use error::{parse_position, ClientError};
pub use feed::{Mode, Start, SubscribeOptions, Subscription, SubscriptionItem, SubscriptionStats};
pub use ingestor::{Completion, IngestStats, Ingestor, IngestorConfig, RecordAck, SubmitError};
pub use stages::{StageCounts, StageSummary};
pub use tls::{ClientTls, ClientTlsFiles};
