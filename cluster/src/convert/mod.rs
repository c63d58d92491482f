//! Conversions between the public API's messages and the storage crate's types.

pub mod bars;
pub mod records;
