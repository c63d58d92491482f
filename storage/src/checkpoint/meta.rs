//! The `CHECKPOINT` file: what a checkpoint covers and which files make it up.
//!
//! ```text
//! magic "QACHKPT1" | version u32 | log_index u64 | blob (varint length + bytes) |
//! file count varint | (name: varint length + bytes, size varint, crc32 u32)* |
//! crc32 of everything before it
//! ```
//!
//! It is written last, crash-atomically: a checkpoint directory without a valid one is
//! unfinished and is removed.

use std::path::Path;

use bytes::Bytes;

use crate::codec::{put_len_prefixed, put_varint, u32_at, Reader};
use crate::error::{Error, Result};
use crate::vfs::Vfs;

/// The name of the metadata file inside a checkpoint directory.
pub const CHECKPOINT_FILE: &str = "CHECKPOINT";
const MAGIC: &[u8; 8] = b"QACHKPT1";
/// The checkpoint format version this code writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// One file of a checkpoint, as listed for streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFile {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC32 of the whole file.
    pub crc32: u32,
}

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMeta {
    /// Every log index up to this one is in the checkpoint, and nothing after it.
    pub log_index: u64,
    /// Opaque data the creator attached (the Raft layer stores membership and log id here).
    pub blob: Bytes,
    /// The files, except this metadata file.
    pub files: Vec<CheckpointFile>,
}

impl CheckpointMeta {
    /// Encodes the metadata file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.log_index.to_le_bytes());
        put_len_prefixed(&mut out, &self.blob);
        put_varint(&mut out, self.files.len() as u64);
        for f in &self.files {
            put_len_prefixed(&mut out, f.name.as_bytes());
            put_varint(&mut out, f.size);
            out.extend_from_slice(&f.crc32.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a metadata file; `None` if it is damaged or malformed.
    pub fn decode(buf: &[u8]) -> Option<CheckpointMeta> {
        let body_len = buf.len().checked_sub(4)?;
        if u32_at(buf, body_len)? != crc32fast::hash(&buf[..body_len]) {
            return None;
        }
        let mut r = Reader::new(&buf[..body_len]);
        if r.bytes(8)? != MAGIC || r.u32()? != CHECKPOINT_VERSION {
            return None;
        }
        let log_index = r.u64()?;
        let blob = Bytes::copy_from_slice(r.len_prefixed()?);
        let count = usize::try_from(r.varint()?).ok()?;
        let mut files = Vec::with_capacity(count.min(buf.len()));
        for _ in 0..count {
            let name = String::from_utf8(r.len_prefixed()?.to_vec()).ok()?;
            let size = r.varint()?;
            let crc32 = r.u32()?;
            files.push(CheckpointFile { name, size, crc32 });
        }
        r.is_empty().then_some(CheckpointMeta {
            log_index,
            blob,
            files,
        })
    }

    /// Reads and checks the metadata file of the checkpoint in `dir`.
    pub fn read(vfs: &dyn Vfs, dir: &Path) -> Result<CheckpointMeta> {
        let path = dir.join(CHECKPOINT_FILE);
        let buf = vfs.read_all(&path)?;
        CheckpointMeta::decode(&buf)
            .ok_or_else(|| Error::corruption(&path, 0, "checkpoint metadata is damaged"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_catches_any_flip() {
        let m = CheckpointMeta {
            log_index: 42,
            blob: Bytes::from_static(b"membership"),
            files: vec![
                CheckpointFile {
                    name: "000007.sst".into(),
                    size: 4096,
                    crc32: 0xdead_beef,
                },
                CheckpointFile {
                    name: "CURRENT".into(),
                    size: 16,
                    crc32: 1,
                },
            ],
        };
        let enc = m.encode();
        assert_eq!(CheckpointMeta::decode(&enc), Some(m));
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x20;
            assert_eq!(CheckpointMeta::decode(&bad), None, "flip at {i}");
        }
    }
}
