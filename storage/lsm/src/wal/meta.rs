//! The WAL metadata file: vote, committed log id and last purged log id.
//!
//! `wal.meta` holds two fixed-size slots. Each write goes to the slot not holding the newest
//! state, with a higher generation, and is fsynced before the next write starts; on open the
//! valid slot with the highest generation wins. A write torn by a crash therefore leaves the
//! previous state readable.
//!
//! ```text
//! slot (4096 bytes): magic "QAWM" | version u16 | reserved u16 | generation u64 |
//!                    payload_len u32 | payload | crc32 of everything before it
//! payload:           flags u8 (1 = vote, 2 = committed, 4 = last_purged) |
//!                    vote (varint length + bytes) | committed (term, index) | purged (term, index)
//! ```

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::entry::LogId;
use crate::codec::{put_len_prefixed, u32_at, Reader};
use crate::error::{Error, InvalidArgument, Result};
use crate::vfs::{temp_path, FileRef, Vfs};

/// The metadata file's name inside the WAL directory.
pub const META_FILE: &str = "wal.meta";
const MAGIC: &[u8; 4] = b"QAWM";
const VERSION: u16 = 1;
const SLOT: usize = 4096;
const SLOT_HEADER: usize = 20;
/// The largest vote the metadata file can hold.
pub const MAX_VOTE_BYTES: usize = 1024;

/// The durable state the WAL keeps beside its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalMeta {
    /// The Raft vote, serialized by the caller.
    pub vote: Option<Bytes>,
    /// The last log id known to be committed.
    pub committed: Option<LogId>,
    /// The last log id removed from the front of the log.
    pub last_purged: Option<LogId>,
}

impl WalMeta {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let flags = u8::from(self.vote.is_some())
            | (u8::from(self.committed.is_some()) << 1)
            | (u8::from(self.last_purged.is_some()) << 2);
        out.push(flags);
        if let Some(v) = &self.vote {
            put_len_prefixed(&mut out, v);
        }
        for id in [self.committed, self.last_purged].into_iter().flatten() {
            out.extend_from_slice(&id.term.to_le_bytes());
            out.extend_from_slice(&id.index.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(buf: &[u8]) -> Option<WalMeta> {
        let mut r = Reader::new(buf);
        let flags = r.u8()?;
        let vote = if flags & 1 != 0 {
            Some(Bytes::copy_from_slice(r.len_prefixed()?))
        } else {
            None
        };
        let mut id = |present: bool| -> Option<Option<LogId>> {
            if !present {
                return Some(None);
            }
            let term = r.u64()?;
            let index = r.u64()?;
            // No log reaches the last index: the entry after it could not be numbered.
            if index == u64::MAX {
                return None;
            }
            Some(Some(LogId::new(term, index)))
        };
        let committed = id(flags & 2 != 0)?;
        let last_purged = id(flags & 4 != 0)?;
        Some(WalMeta {
            vote,
            committed,
            last_purged,
        })
    }

    /// Checks that the metadata fits in a slot.
    pub fn validate(&self) -> Result<()> {
        if let Some(v) = &self.vote {
            if v.len() > MAX_VOTE_BYTES {
                return Err(InvalidArgument::VoteTooLarge {
                    len: v.len(),
                    max: MAX_VOTE_BYTES,
                }
                .into());
            }
        }
        Ok(())
    }
}

fn encode_slot(generation: u64, meta: &WalMeta) -> Vec<u8> {
    let payload = meta.encode();
    let mut slot = Vec::with_capacity(SLOT);
    slot.extend_from_slice(MAGIC);
    slot.extend_from_slice(&VERSION.to_le_bytes());
    slot.extend_from_slice(&0u16.to_le_bytes());
    slot.extend_from_slice(&generation.to_le_bytes());
    slot.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    slot.extend_from_slice(&payload);
    let crc = crc32fast::hash(&slot);
    slot.extend_from_slice(&crc.to_le_bytes());
    slot.resize(SLOT, 0);
    slot
}

pub(crate) fn decode_slot(slot: &[u8]) -> Option<(u64, WalMeta)> {
    let mut r = Reader::new(slot);
    if r.bytes(4)? != MAGIC || u16::from_le_bytes(r.bytes(2)?.try_into().ok()?) != VERSION {
        return None;
    }
    r.bytes(2)?;
    let generation = r.u64()?;
    let len = r.u32()? as usize;
    let end = SLOT_HEADER.checked_add(len)?;
    let payload = slot.get(SLOT_HEADER..end)?;
    if u32_at(slot, end)? != crc32fast::hash(&slot[..end]) {
        return None;
    }
    Some((generation, WalMeta::decode(payload)?))
}

/// The open metadata file. Only the flusher thread writes it after the WAL is open.
#[derive(Debug)]
pub struct MetaFile {
    file: FileRef,
    generation: u64,
}

impl MetaFile {
    /// The metadata file's path inside `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(META_FILE)
    }

    /// Creates a new metadata file holding `meta`, crash-atomically.
    pub fn create(vfs: &dyn Vfs, dir: &Path, meta: &WalMeta) -> Result<MetaFile> {
        let path = Self::path(dir);
        let tmp = temp_path(&path);
        if vfs.exists(&tmp)? {
            vfs.remove(&tmp)?;
        }
        let file = vfs.create(&tmp)?;
        // Generation 1 lives in slot 1, like every odd generation.
        let mut image = vec![0u8; SLOT];
        image.extend_from_slice(&encode_slot(1, meta));
        file.write_at(0, &image)?;
        file.sync_data()?;
        vfs.rename(&tmp, &path)?;
        vfs.sync_dir(dir)?;
        Ok(MetaFile {
            file: vfs.open(&path)?,
            generation: 1,
        })
    }

    /// Opens the metadata file and returns the newest valid state in it.
    pub fn open(vfs: &dyn Vfs, dir: &Path) -> Result<(MetaFile, WalMeta)> {
        let path = Self::path(dir);
        let buf = vfs.read_all(&path)?;
        if buf.len() != 2 * SLOT {
            return Err(Error::corruption(
                &path,
                0,
                format!(
                    "metadata file is {} bytes, expected {}",
                    buf.len(),
                    2 * SLOT
                ),
            ));
        }
        let best = [&buf[..SLOT], &buf[SLOT..]]
            .into_iter()
            .filter_map(decode_slot)
            .max_by_key(|(generation, _)| *generation);
        let Some((generation, meta)) = best else {
            return Err(Error::corruption(
                &path,
                0,
                "no valid slot in metadata file",
            ));
        };
        let file = vfs.open(&path)?;
        Ok((MetaFile { file, generation }, meta))
    }

    /// Durably replaces the stored state with `meta`.
    pub fn write(&mut self, meta: &WalMeta) -> Result<()> {
        let generation = self.generation + 1;
        let slot_offset = (generation % 2) * SLOT as u64;
        self.file
            .write_at(slot_offset, &encode_slot(generation, meta))?;
        self.file.sync_data()?;
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{PowerCut, SimVfs, Vfs};

    fn sample(n: u64) -> WalMeta {
        WalMeta {
            vote: Some(Bytes::from(vec![n as u8; 9])),
            committed: Some(LogId::new(2, n)),
            last_purged: (n > 1).then(|| LogId::new(1, n - 1)),
        }
    }

    #[test]
    fn newest_slot_wins_and_survives_a_torn_write() {
        let vfs = SimVfs::new(3);
        let dir = Path::new("/w");
        vfs.create_dir_all(dir).unwrap();
        let mut mf = MetaFile::create(&vfs, dir, &sample(1)).unwrap();
        mf.write(&sample(2)).unwrap();
        mf.write(&sample(3)).unwrap();
        assert_eq!(MetaFile::open(&vfs, dir).unwrap().1, sample(3));
        // Damage the newest slot: the previous state must come back.
        let newest = (mf.generation % 2) as usize * SLOT;
        vfs.corrupt(&MetaFile::path(dir), newest + 30, &[0xAA])
            .unwrap();
        assert_eq!(MetaFile::open(&vfs, dir).unwrap().1, sample(2));
    }

    #[test]
    fn an_unsynced_write_is_lost_whole() {
        let vfs = SimVfs::new(3);
        let dir = Path::new("/w");
        vfs.create_dir_all(dir).unwrap();
        let mut mf = MetaFile::create(&vfs, dir, &sample(1)).unwrap();
        mf.write(&sample(2)).unwrap();
        vfs.crash_after_ops(2, PowerCut::KeepRandomPrefix); // write happens, sync does not
        assert!(mf.write(&sample(3)).is_err());
        vfs.restart();
        assert_eq!(MetaFile::open(&vfs, dir).unwrap().1, sample(2));
    }

    #[test]
    fn a_log_id_at_the_last_index_does_not_decode() {
        for meta in [
            WalMeta {
                last_purged: Some(LogId::new(1, u64::MAX)),
                ..WalMeta::default()
            },
            WalMeta {
                committed: Some(LogId::new(1, u64::MAX)),
                ..WalMeta::default()
            },
        ] {
            assert_eq!(WalMeta::decode(&meta.encode()), None);
        }
        assert_eq!(WalMeta::decode(&sample(5).encode()), Some(sample(5)));
    }

    #[test]
    fn oversized_votes_are_refused() {
        let meta = WalMeta {
            vote: Some(Bytes::from(vec![0u8; MAX_VOTE_BYTES + 1])),
            ..WalMeta::default()
        };
        assert!(meta.validate().is_err());
    }
}
