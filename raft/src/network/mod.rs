//! The peer network: the gRPC service nodes serve each other ([`server`]) and openraft's
//! network on top of its client ([`client`]), with the message conversions between them
//! ([`convert`]), the deadlines of appends in flight ([`flight`]) and what was seen of each peer
//! ([`peer_book`]). Replication may instead travel in the append stream's own framing
//! ([`append_wire`]) on the same port: dialed by [`append_link`], told apart from gRPC and
//! served by [`append_port`].

pub mod append_link;
pub mod append_port;
pub mod append_wire;
pub mod client;
pub mod convert;
pub mod flight;
pub mod killable;
pub mod peer_book;
pub mod server;

pub use client::{NetworkConfig, PeerNetwork};
pub use flight::AnswerDeadline;
pub use peer_book::PeerStats;
pub use server::{PeerGuard, PeerService};
