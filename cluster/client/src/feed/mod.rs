//! Subscriptions to the committed event stream, and durable consumers.
//!
//! [`Client::subscribe`](crate::Client::subscribe) opens a [`Subscription`] on a follower
//! (the leader is the last choice) and keeps it going across node failures: the caller sees
//! each committed event matching the filter once, in position order. The durable consumer
//! calls (`create_consumer`, `ack`, ...) go to any node; a follower forwards changes to the
//! leader.

mod consumers;
mod cursor;
mod nodes;
mod options;
mod subscription;

pub use options::{Mode, Start, SubscribeOptions};
pub use subscription::{Subscription, SubscriptionItem, SubscriptionStats};
