//! The properties block: what a table holds, so it can be described without scanning it.

use crate::codec::{put_len_prefixed, put_varint, Reader};

/// Facts about one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// Key versions stored.
    pub entries: u64,
    /// Of which deletes.
    pub tombstones: u64,
    /// Data blocks.
    pub data_blocks: u64,
    /// Smallest and largest sequence numbers stored.
    pub min_seq: u64,
    /// Largest sequence number stored.
    pub max_seq: u64,
    /// Smallest internal key (encoded).
    pub smallest: Vec<u8>,
    /// Largest internal key (encoded).
    pub largest: Vec<u8>,
    /// Sum of user key lengths.
    pub raw_key_bytes: u64,
    /// Sum of value lengths.
    pub raw_value_bytes: u64,
}

impl Properties {
    /// Encodes the block body (the builder adds the checksum).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [
            self.entries,
            self.tombstones,
            self.data_blocks,
            self.min_seq,
            self.max_seq,
            self.raw_key_bytes,
            self.raw_value_bytes,
        ] {
            put_varint(&mut out, v);
        }
        put_len_prefixed(&mut out, &self.smallest);
        put_len_prefixed(&mut out, &self.largest);
        out
    }

    /// Decodes a block body.
    pub fn decode(buf: &[u8]) -> Option<Properties> {
        let mut r = Reader::new(buf);
        let mut p = Properties {
            entries: r.varint()?,
            tombstones: r.varint()?,
            data_blocks: r.varint()?,
            min_seq: r.varint()?,
            max_seq: r.varint()?,
            raw_key_bytes: r.varint()?,
            raw_value_bytes: r.varint()?,
            ..Properties::default()
        };
        p.smallest = r.len_prefixed()?.to_vec();
        p.largest = r.len_prefixed()?.to_vec();
        r.is_empty().then_some(p)
    }
}
