//! Subscriptions as a node serves them.

pub mod consumers;
