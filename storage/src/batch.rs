//! A write batch: the operations of one log entry, applied atomically.

use bytes::Bytes;

use crate::error::{InvalidArgument, Result};
use crate::ikey::MAX_BATCH_OPS;

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl BatchOp {
    /// The key the operation touches.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}

/// Operations applied together: they become visible at once and get consecutive ordinals
/// (a later operation on the same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        self.ops.push(BatchOp::Delete { key: key.into() });
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks every operation against the limits; the first failure names its position.
    pub fn validate(&self, max_key: usize, max_value: usize) -> Result<()> {
        if self.ops.len() > MAX_BATCH_OPS {
            return Err(InvalidArgument::BatchTooLarge {
                len: self.ops.len(),
                max: MAX_BATCH_OPS,
            }
            .into());
        }
        for (position, op) in self.ops.iter().enumerate() {
            let key = op.key();
            if key.is_empty() {
                return Err(InvalidArgument::EmptyKey { position }.into());
            }
            if key.len() > max_key {
                return Err(InvalidArgument::KeyTooLong {
                    position,
                    len: key.len(),
                    max: max_key,
                }
                .into());
            }
            if let BatchOp::Put { value, .. } = op {
                if value.len() > max_value {
                    return Err(InvalidArgument::ValueTooLong {
                        position,
                        len: value.len(),
                        max: max_value,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }
}

impl FromIterator<BatchOp> for WriteBatch {
    fn from_iter<T: IntoIterator<Item = BatchOp>>(iter: T) -> Self {
        WriteBatch {
            ops: iter.into_iter().collect(),
        }
    }
}
