//! The `CHECKPOINT` file: what a checkpoint covers and which files make it up.
//!
//! ```text
//! magic "QACHKPT1" | version u32 | log_index u64 | blob (varint length + bytes) |
//! file count varint | (name: varint length + bytes, size varint, crc32 u32)* |
//! [version 2: extra dir count varint | (name: varint length + bytes)*] |
//! crc32 of everything before it
//! ```
//!
//! Version 1 lists no extra directories: the only one it could carry was `olap`, so a version 1
//! file means exactly that one. A checkpoint whose extra directories are just `olap` is still
//! written as version 1, which keeps it readable by builds that know only version 1; any other
//! list is written as version 2.
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
/// The newest checkpoint format version this code writes and reads (it reads every older one).
pub const CHECKPOINT_VERSION: u32 = 2;
/// The extra directories of every version 1 checkpoint.
const V1_EXTRA_DIRS: [&str; 1] = ["olap"];

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
    /// Directories (relative to the checkpoint's) whose files its owner asked it to carry
    /// beside the engine's own; see [`crate::checkpoint::extra`].
    pub extra_dirs: Vec<String>,
}

impl CheckpointMeta {
    /// Encodes the metadata file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let version = if self.extra_dirs == V1_EXTRA_DIRS {
            1
        } else {
            CHECKPOINT_VERSION
        };
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&self.log_index.to_le_bytes());
        put_len_prefixed(&mut out, &self.blob);
        put_varint(&mut out, self.files.len() as u64);
        for f in &self.files {
            put_len_prefixed(&mut out, f.name.as_bytes());
            put_varint(&mut out, f.size);
            out.extend_from_slice(&f.crc32.to_le_bytes());
        }
        if version >= 2 {
            put_varint(&mut out, self.extra_dirs.len() as u64);
            for d in &self.extra_dirs {
                put_len_prefixed(&mut out, d.as_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a metadata file; `None` if it is damaged or malformed, or of a format version
    /// this code does not know (see [`CheckpointMeta::version_of`]).
    pub fn decode(buf: &[u8]) -> Option<CheckpointMeta> {
        let version = Self::version_of(buf)?;
        if !(1..=CHECKPOINT_VERSION).contains(&version) {
            return None;
        }
        let mut r = Reader::new(&buf[..buf.len() - 4]);
        r.bytes(12)?;
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
        let extra_dirs = if version == 1 {
            V1_EXTRA_DIRS.map(String::from).to_vec()
        } else {
            let count = usize::try_from(r.varint()?).ok()?;
            let mut dirs = Vec::with_capacity(count.min(buf.len()));
            for _ in 0..count {
                dirs.push(String::from_utf8(r.len_prefixed()?.to_vec()).ok()?);
            }
            dirs
        };
        r.is_empty().then_some(CheckpointMeta {
            log_index,
            blob,
            files,
            extra_dirs,
        })
    }

    /// The format version of an intact metadata file (checksum and magic checked), known to
    /// this code or not; `None` if it is damaged.
    pub fn version_of(buf: &[u8]) -> Option<u32> {
        let body_len = buf.len().checked_sub(4)?;
        if u32_at(buf, body_len)? != crc32fast::hash(&buf[..body_len]) {
            return None;
        }
        let mut r = Reader::new(&buf[..body_len]);
        if r.bytes(8)? != MAGIC {
            return None;
        }
        r.u32()
    }

    /// Reads and checks the metadata file of the checkpoint in `dir`.
    pub fn read(vfs: &dyn Vfs, dir: &Path) -> Result<CheckpointMeta> {
        let path = dir.join(CHECKPOINT_FILE);
        let buf = vfs.read_all(&path)?;
        CheckpointMeta::decode(&buf).ok_or_else(|| {
            let reason = match Self::version_of(&buf) {
                Some(v) if v > CHECKPOINT_VERSION => format!(
                    "checkpoint format version {v} is newer than this build reads \
                     (up to {CHECKPOINT_VERSION})"
                ),
                _ => "checkpoint metadata is damaged".to_string(),
            };
            Error::corruption(&path, 0, reason)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(extra_dirs: &[&str]) -> CheckpointMeta {
        CheckpointMeta {
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
            extra_dirs: extra_dirs.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn round_trips_and_catches_any_flip() {
        for dirs in [&[][..], &["olap"], &["olap", "more"], &["more"]] {
            let m = meta(dirs);
            let enc = m.encode();
            assert_eq!(CheckpointMeta::decode(&enc), Some(m), "{dirs:?}");
            for i in 0..enc.len() {
                let mut bad = enc.clone();
                bad[i] ^= 0x20;
                assert_eq!(CheckpointMeta::decode(&bad), None, "flip at {i}");
            }
        }
    }

    #[test]
    fn olap_alone_is_written_as_version_1() {
        assert_eq!(
            CheckpointMeta::version_of(&meta(&["olap"]).encode()),
            Some(1)
        );
        assert_eq!(CheckpointMeta::version_of(&meta(&[]).encode()), Some(2));
    }

    #[test]
    fn a_newer_version_is_named_in_the_error() {
        let mut enc = meta(&[]).encode();
        enc[8..12].copy_from_slice(&(CHECKPOINT_VERSION + 1).to_le_bytes());
        let body = enc.len() - 4;
        let crc = crc32fast::hash(&enc[..body]);
        enc[body..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(CheckpointMeta::decode(&enc), None);
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(CHECKPOINT_FILE), &enc).unwrap();
        let err = CheckpointMeta::read(&crate::vfs::OsVfs, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }
}
