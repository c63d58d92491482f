//! Conversions between the public API's messages and the storage crate's types.

pub(crate) mod bars;
pub mod records;
