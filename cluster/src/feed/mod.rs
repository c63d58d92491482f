//! Subscriptions: the committed event stream, served by every node.
//!
//! Each node's state machine announces the entries it applies to the node's [`LiveFeed`]; the
//! `Feed` service ([`FeedService`]) runs one task per subscription ([`stream`]) that resolves
//! where it starts ([`start`]), catches up from the journal, follows the live feed and
//! delivers in its mode. A node only sends what it has applied, so every event sent was
//! committed, and positions mean the same on every node.

pub mod convert;
pub mod live;
pub mod metrics;
mod service;
pub mod start;
pub mod stream;

#[cfg(test)]
mod tests;

pub use live::LiveFeed;
pub use service::FeedService;
