//! Sorted string tables: immutable files of sorted key versions.
//!
//! ```text
//! data block* (16-byte aligned) | filter block | index block | properties block | footer
//! ```
//!
//! Each concept lives in its own file: [`block`] (entries, restart points, checksum),
//! [`bloom`] (the filter), [`index`] (one entry per block), [`properties`], [`footer`],
//! [`builder`] (writing) and [`reader`] / [`iter`] (reading through a memory map).

pub mod block;
pub mod bloom;
pub mod builder;
pub mod footer;
pub mod index;
pub mod iter;
pub mod properties;
pub mod reader;

pub use builder::{TableBuilder, TableConfig};
pub use reader::{Table, TableGet};
