//! What the WAL stores: log entries identified by (term, index), with an opaque payload.

use bytes::Bytes;

use crate::codec::u64_at;

/// The identity of a log entry: the term it was proposed in and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// The leader term the entry belongs to.
    pub term: u64,
    /// Its position in the log.
    pub index: u64,
}

impl LogId {
    /// A log id from its parts.
    pub fn new(term: u64, index: u64) -> Self {
        LogId { term, index }
    }
}

/// One entry of the log. The WAL does not interpret the payload (the Raft layer stores its
/// serialized entry there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// Position in the log.
    pub index: u64,
    /// Term of the leader that created it.
    pub term: u64,
    /// The entry's content.
    pub payload: Bytes,
}

/// Bytes of fixed fields before the payload inside a frame.
pub(crate) const ENTRY_FIXED: usize = 16;

impl WalEntry {
    /// An entry from its parts.
    pub fn new(index: u64, term: u64, payload: impl Into<Bytes>) -> Self {
        WalEntry {
            index,
            term,
            payload: payload.into(),
        }
    }

    /// The entry's log id.
    pub fn log_id(&self) -> LogId {
        LogId::new(self.term, self.index)
    }

    /// Appends the frame payload for this entry: index, term, then the payload.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.term.to_le_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Decodes a frame payload; `frame` is the same bytes as a shared buffer so the entry's
    /// payload can point into it without copying.
    pub(crate) fn decode(frame: &Bytes) -> Option<WalEntry> {
        let index = u64_at(frame, 0)?;
        let term = u64_at(frame, 8)?;
        Some(WalEntry {
            index,
            term,
            payload: frame.slice(ENTRY_FIXED..),
        })
    }
}
