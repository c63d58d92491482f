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

    /// Moves every operation of `other` to the end of this batch, in order.
    pub fn append(&mut self, mut other: WriteBatch) -> &mut Self {
        if self.ops.is_empty() {
            self.ops = other.ops;
        } else {
            self.ops.append(&mut other.ops);
        }
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

    /// The ordinal of each operation: its position in batches of up to 65,536 operations; in
    /// larger ones, its position among the operations on the same key. Fails if one key is
    /// written more than 65,536 times.
    pub fn ordinals(&self) -> Result<Vec<u16>> {
        if self.ops.len() <= MAX_BATCH_OPS {
            return Ok((0..self.ops.len()).map(|i| i as u16).collect());
        }
        let mut seen: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
        self.ops
            .iter()
            .map(|op| {
                let n = seen.entry(op.key()).or_insert(0);
                let ordinal = *n;
                *n += 1;
                u16::try_from(ordinal).map_err(|_| {
                    InvalidArgument::BatchTooLarge {
                        len: self.ops.len(),
                        max: MAX_BATCH_OPS,
                    }
                    .into()
                })
            })
            .collect()
    }
}

impl FromIterator<BatchOp> for WriteBatch {
    fn from_iter<T: IntoIterator<Item = BatchOp>>(iter: T) -> Self {
        WriteBatch {
            ops: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_batches_number_each_keys_operations() {
        let mut b = WriteBatch::new();
        for i in 0..70_000u32 {
            b.put(format!("k{}", i % 3), "v");
        }
        let o = b.ordinals().unwrap();
        assert_eq!((o[0], o[1], o[3], o[69_999]), (0, 0, 1, 23_333));
        let mut same = WriteBatch::new();
        for _ in 0..70_000 {
            same.put("same", "v");
        }
        assert!(same.ordinals().is_err());
    }
}
