//! One buffer for the small values of a batch.
//!
//! Each value a writer hands over is usually an allocation of its own (often two: the bytes and
//! their owner). Kept as they are in the memtable, every one of them is freed separately when
//! the memtable goes, which under a steady write load costs about as much CPU as inserting
//! them. Copied into one buffer per batch, a memtable entry's value is a slice of that buffer,
//! and the writer's allocations are freed at once, by the thread that made them.

use bytes::Bytes;

use crate::batch::{BatchOp, WriteBatch};

/// Values longer than this keep their own allocation (copying them would double their memory
/// for a while and gain nothing).
pub const MAX_PACKED_VALUE: usize = 1024;

/// Values start at multiples of this in the buffer, as in most allocations, so that readers
/// that need aligned bytes (archived records) get them without a copy.
const ALIGN: usize = 16;

/// The value of each operation of `batch`, in order (empty for deletes): the small ones as
/// slices of one shared buffer, the others as they were.
pub fn pack_values(batch: &WriteBatch) -> Vec<Bytes> {
    let packed = |v: &Bytes| !v.is_empty() && v.len() <= MAX_PACKED_VALUE;
    let total: usize = batch
        .ops()
        .iter()
        .filter_map(|op| match op {
            BatchOp::Put { value, .. } if packed(value) => {
                Some(value.len().next_multiple_of(ALIGN))
            }
            _ => None,
        })
        .sum();
    if total == 0 {
        return batch.ops().iter().map(value_of).collect();
    }
    let mut buf: Vec<u8> = Vec::with_capacity(total + ALIGN);
    let skip = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
    buf.resize(skip, 0);
    let mut ranges = Vec::with_capacity(batch.len());
    for op in batch.ops() {
        match op {
            BatchOp::Put { value, .. } if packed(value) => {
                let start = buf.len();
                buf.extend_from_slice(value);
                ranges.push(Some(start..buf.len()));
                buf.resize(buf.len().next_multiple_of(ALIGN).max(start), 0);
            }
            _ => ranges.push(None),
        }
    }
    // The buffer never grew past its capacity, so it did not move and the offsets still hold.
    let shared = Bytes::from(buf);
    batch
        .ops()
        .iter()
        .zip(ranges)
        .map(|(op, range)| match range {
            Some(r) => shared.slice(r),
            None => value_of(op),
        })
        .collect()
}

fn value_of(op: &BatchOp) -> Bytes {
    match op {
        BatchOp::Put { value, .. } => value.clone(),
        BatchOp::Delete { .. } => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_share_one_aligned_buffer_and_large_ones_stay_as_they_are() {
        let large = Bytes::from(vec![9u8; MAX_PACKED_VALUE + 1]);
        let mut b = WriteBatch::new();
        b.put("a", Bytes::from_static(b"one"));
        b.delete("b");
        b.put("c", large.clone());
        b.put("d", Bytes::new());
        b.put("e", vec![7u8; 40]);
        b.put("f", vec![1u8; MAX_PACKED_VALUE]);
        let values = pack_values(&b);
        assert_eq!(values.len(), 6);
        assert_eq!(&values[0][..], b"one");
        assert!(values[1].is_empty());
        assert_eq!(values[2].as_ptr(), large.as_ptr(), "not copied");
        assert!(values[3].is_empty());
        assert_eq!(&values[4][..], &[7u8; 40][..]);
        assert_eq!(&values[5][..], &[1u8; MAX_PACKED_VALUE][..]);
        for v in [&values[0], &values[4], &values[5]] {
            assert_eq!(v.as_ptr().align_offset(ALIGN), 0);
        }
        // One buffer: the packed values lie in order within one allocation.
        let (first, last) = (values[0].as_ptr() as usize, values[5].as_ptr() as usize);
        assert!(first < values[4].as_ptr() as usize && (values[4].as_ptr() as usize) < last);
        assert!(last - first < 2 * MAX_PACKED_VALUE);
    }

    #[test]
    fn a_batch_without_small_values_copies_nothing() {
        let mut b = WriteBatch::new();
        b.delete("a");
        b.put("b", Bytes::new());
        let values = pack_values(&b);
        assert!(values.iter().all(Bytes::is_empty));
    }
}
