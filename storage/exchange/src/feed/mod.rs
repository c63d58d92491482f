//! What subscriptions are made of: a committed record's [`Position`], the [`EventFilter`] a
//! subscriber chooses (with the [`OrderPlace`] an order update is matched on), the
//! [`CommittedBatch`]es a node hands to its live feed as it applies
//! entries ([`EventSink`]), reading events back from the journal ([`journal`]) and merging a
//! window of events into the latest state per key ([`conflate`]), replaying ticks and trades
//! the journal dropped from Parquet ([`archive`]), and the state a "snapshot
//! then tail" stream starts with ([`snapshot`]).
//!
//! Positions are assigned by the log, so they are the same on every replica: a subscriber can
//! resume on any node after the last position it saw.

pub mod archive;
mod batch;
pub mod conflate;
mod filter;
pub mod journal;
pub mod order_place;
mod position;
pub mod snapshot;

pub use batch::{CommittedBatch, CommittedEvent, EventSink};
pub use filter::{EventFilter, EventKind, InvalidFilter, MAX_FILTER_ENTRIES, MAX_FILTER_ID_BYTES};
pub use order_place::{OrderPlace, OrderPlaces};
pub use position::{ParsePositionError, Position};
