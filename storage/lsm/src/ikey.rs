//! Internal keys: a user key plus the sequence number and kind of one version of it.
//!
//! The engine's sequence number is `log index << 16 | ordinal in batch`, so the
//! records of one Raft entry never collide and a snapshot at "everything up to index N" is the
//! sequence number `N << 16 | 0xFFFF`. The ordinal only has to tell apart operations on the
//! same key: a batch of up to 65,536 operations numbers them by position, a larger one numbers
//! each key's operations separately (so no key may be written more than 65,536 times in one
//! batch).
//!
//! Encoded form, used in memtables and SSTables:
//!
//! ```text
//! user key bytes | sequence u64 big-endian | kind u8 (0 = delete, 1 = put)
//! ```
//!
//! Internal keys order by user key ascending, then sequence descending, so a seek to
//! `(key, snapshot)` lands on the newest version visible at that snapshot.

use std::borrow::Borrow;
use std::cmp::Ordering;

/// Bits of the sequence number that hold the record's ordinal within its batch.
pub const ORDINAL_BITS: u32 = 16;
/// Ordinals available in one batch (0..=65535): the most operations on one key a batch may
/// hold, and the batch size up to which ordinals are simply positions.
pub const MAX_BATCH_OPS: usize = 1 << ORDINAL_BITS;
/// The largest log index a sequence number can carry.
pub const MAX_LOG_INDEX: u64 = (1 << (64 - ORDINAL_BITS)) - 1;
/// Bytes after the user key: sequence (8) and kind (1).
pub const TRAILER: usize = 9;

/// The sequence number of the `ordinal`-th record of the batch at `log_index`.
pub fn seq_of(log_index: u64, ordinal: u16) -> u64 {
    (log_index << ORDINAL_BITS) | u64::from(ordinal)
}

/// The highest sequence number of the batch at `log_index`: a read snapshot that sees every
/// batch up to and including it.
pub fn snapshot_at(log_index: u64) -> u64 {
    seq_of(log_index, u16::MAX)
}

/// The log index a sequence number came from.
pub fn index_of(seq: u64) -> u64 {
    seq >> ORDINAL_BITS
}

/// Whether a version holds a value or deletes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key is deleted as of this version.
    Delete = 0,
    /// A value.
    Put = 1,
}

impl ValueKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// Appends the encoded internal key to `out`.
pub fn encode(out: &mut Vec<u8>, user_key: &[u8], seq: u64, kind: ValueKind) {
    out.extend_from_slice(user_key);
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(kind as u8);
}

/// An encoded internal key, borrowed. Callers construct it only from bytes of at least
/// [`TRAILER`] length (see [`IKey::from_bytes`]).
#[derive(Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct IKey([u8]);

impl IKey {
    /// Views `bytes` as an internal key, or `None` if it is too short to be one.
    pub fn from_bytes(bytes: &[u8]) -> Option<&IKey> {
        if bytes.len() < TRAILER {
            return None;
        }
        // SAFETY: `IKey` is `repr(transparent)` over `[u8]`, so the pointer cast keeps layout
        // and metadata; the lifetime is carried over unchanged.
        Some(unsafe { &*(bytes as *const [u8] as *const IKey) })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The user key.
    pub fn user_key(&self) -> &[u8] {
        &self.0[..self.0.len() - TRAILER]
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        let n = self.0.len();
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[n - TRAILER..n - 1]);
        u64::from_be_bytes(b)
    }

    /// The kind byte, decoded (an unknown byte reads as `None`).
    pub fn kind(&self) -> Option<ValueKind> {
        ValueKind::from_u8(self.0[self.0.len() - 1])
    }
}

impl Ord for IKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.user_key()
            .cmp(other.user_key())
            .then_with(|| other.seq().cmp(&self.seq()))
    }
}

impl PartialOrd for IKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders two (user key, sequence) pairs the way internal keys order.
pub fn cmp_parts(a_key: &[u8], a_seq: u64, b_key: &[u8], b_seq: u64) -> Ordering {
    a_key.cmp(b_key).then_with(|| b_seq.cmp(&a_seq))
}

/// Encoded internal keys up to this length are stored inline (no heap allocation).
const INLINE: usize = 46;

/// An owned, encoded internal key. Short keys are kept inline, so a skip-list node holds its
/// key in the same cache lines as its links: a search costs one cache miss per node, not two.
#[derive(Clone)]
pub struct InternalKey(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl InternalKey {
    /// Encodes an internal key.
    pub fn new(user_key: &[u8], seq: u64, kind: ValueKind) -> Self {
        let len = user_key.len() + TRAILER;
        if len <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..user_key.len()].copy_from_slice(user_key);
            buf[user_key.len()..len - 1].copy_from_slice(&seq.to_be_bytes());
            buf[len - 1] = kind as u8;
            return InternalKey(Repr::Inline {
                len: len as u8,
                buf,
            });
        }
        let mut v = Vec::with_capacity(len);
        encode(&mut v, user_key, seq, kind);
        InternalKey(Repr::Heap(v.into_boxed_slice()))
    }

    /// Takes ownership of encoded bytes, or `None` if they are too short.
    pub fn from_vec(bytes: Vec<u8>) -> Option<Self> {
        IKey::from_bytes(&bytes)?;
        Some(InternalKey(Repr::Heap(bytes.into_boxed_slice())))
    }

    /// The borrowed form.
    pub fn as_ikey(&self) -> &IKey {
        // Length was checked when the key was built.
        IKey::from_bytes(self.as_bytes()).unwrap_or_else(|| unreachable!("internal key too short"))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_ikey().fmt(f)
    }
}

impl PartialEq for InternalKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for InternalKey {}

impl Borrow<IKey> for InternalKey {
    fn borrow(&self) -> &IKey {
        self.as_ikey()
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_ikey().cmp(other.as_ikey())
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first_and_user_keys_never_mix() {
        let a_new = InternalKey::new(b"a", 9, ValueKind::Put);
        let a_old = InternalKey::new(b"a", 3, ValueKind::Delete);
        let ab = InternalKey::new(b"ab", u64::MAX, ValueKind::Put);
        assert!(a_new < a_old);
        assert!(a_old < ab);
        assert_eq!(a_old.as_ikey().user_key(), b"a");
        assert_eq!(a_old.as_ikey().seq(), 3);
        assert_eq!(a_old.as_ikey().kind(), Some(ValueKind::Delete));
    }

    #[test]
    fn sequence_numbers_carry_index_and_ordinal() {
        assert_eq!(index_of(seq_of(77, 5)), 77);
        assert!(seq_of(77, u16::MAX) < seq_of(78, 0));
        assert_eq!(snapshot_at(3), seq_of(3, 65535));
        assert_eq!(index_of(seq_of(MAX_LOG_INDEX, 0)), MAX_LOG_INDEX);
    }

    #[test]
    fn long_and_short_keys_compare_alike() {
        let short = InternalKey::new(b"abc", 5, ValueKind::Put);
        let long = InternalKey::new(&[b'a'; 100], 5, ValueKind::Put);
        assert_eq!(short.as_ikey().user_key(), b"abc");
        assert_eq!(long.as_ikey().user_key(), &[b'a'; 100][..]);
        assert!(long < short);
        let edge = InternalKey::new(&[7u8; INLINE - TRAILER], 1, ValueKind::Delete);
        assert_eq!(edge.as_ikey().kind(), Some(ValueKind::Delete));
        assert_eq!(edge.as_ikey().seq(), 1);
    }

    #[test]
    fn short_bytes_are_not_keys() {
        assert!(IKey::from_bytes(&[0; 8]).is_none());
        assert!(InternalKey::from_vec(vec![1, 2]).is_none());
    }
}
