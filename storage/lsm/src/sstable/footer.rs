//! The fixed-size footer at the end of every table.
//!
//! ```text
//! index handle (offset u64, len u64) | filter handle | properties handle |
//! format version u32 | crc32 of the preceding 52 bytes u32 | magic u64
//! ```

use crate::codec::{u32_at, u64_at};

/// Bytes of the footer.
pub const FOOTER_LEN: usize = 64;
/// The table format version this code writes and reads.
pub const TABLE_VERSION: u32 = 1;
const MAGIC: u64 = u64::from_le_bytes(*b"QASSTBL1");

/// Where a block lives in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Length including the block's checksum.
    pub len: u64,
}

/// The decoded footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// The sparse index block.
    pub index: BlockHandle,
    /// The bloom filter block.
    pub filter: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
}

impl Footer {
    /// Encodes the footer.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        for (i, h) in [self.index, self.filter, self.properties]
            .iter()
            .enumerate()
        {
            out[i * 16..i * 16 + 8].copy_from_slice(&h.offset.to_le_bytes());
            out[i * 16 + 8..i * 16 + 16].copy_from_slice(&h.len.to_le_bytes());
        }
        out[48..52].copy_from_slice(&TABLE_VERSION.to_le_bytes());
        let crc = crc32fast::hash(&out[..52]);
        out[52..56].copy_from_slice(&crc.to_le_bytes());
        out[56..64].copy_from_slice(&MAGIC.to_le_bytes());
        out
    }

    /// Decodes and checks a footer; `file_len` bounds the handles.
    pub fn decode(buf: &[u8], file_len: u64) -> Result<Footer, &'static str> {
        if buf.len() != FOOTER_LEN {
            return Err("file shorter than a table footer");
        }
        if u64_at(buf, 56) != Some(MAGIC) {
            return Err("bad table magic");
        }
        if u32_at(buf, 52) != Some(crc32fast::hash(&buf[..52])) {
            return Err("footer checksum mismatch");
        }
        if u32_at(buf, 48) != Some(TABLE_VERSION) {
            return Err("unsupported table format version");
        }
        let handle = |i: usize| -> Result<BlockHandle, &'static str> {
            let h = BlockHandle {
                offset: u64_at(buf, i * 16).ok_or("short footer")?,
                len: u64_at(buf, i * 16 + 8).ok_or("short footer")?,
            };
            match h.offset.checked_add(h.len) {
                Some(end) if end <= file_len.saturating_sub(FOOTER_LEN as u64) => Ok(h),
                _ => Err("block handle outside the file"),
            }
        };
        Ok(Footer {
            index: handle(0)?,
            filter: handle(1)?,
            properties: handle(2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds_handles() {
        let f = Footer {
            index: BlockHandle {
                offset: 100,
                len: 20,
            },
            filter: BlockHandle {
                offset: 60,
                len: 40,
            },
            properties: BlockHandle {
                offset: 120,
                len: 30,
            },
        };
        let enc = f.encode();
        assert_eq!(Footer::decode(&enc, 150 + 64), Ok(f));
        assert!(Footer::decode(&enc, 149 + 64).is_err());
        let mut bad = enc;
        bad[3] ^= 1;
        assert!(Footer::decode(&bad, 1000).is_err());
    }
}
