//! The peer network: the gRPC service nodes serve each other ([`server`]) and openraft's
//! network on top of its client ([`client`]), with the message conversions between them
//! ([`convert`]).

pub mod client;
pub mod convert;
pub mod killable;
pub mod server;

pub use client::{NetworkOptions, PeerClient, PeerNetwork};
pub use server::{PeerGuard, PeerService};
