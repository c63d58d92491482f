//! The manifest: an append-only log of version edits, and the CURRENT pointer to it.
//!
//! ```text
//! MANIFEST-n: header (magic "QAMANIFS" | version u32 | crc32 u32) then one frame per edit
//! edit:       tagged fields, each tag once or repeated:
//!             1 next_file_number varint | 2 flushed_seq varint |
//!             3 add file: level u8, number, size, entries (varints), smallest, largest (varint
//!               length + bytes) | 4 remove file: level u8, number varint
//! CURRENT:    "MANIFEST-n\n", replaced crash-atomically
//! ```
//!
//! Each edit is appended and fsynced before the change it describes becomes visible. The first
//! edit of a manifest is a snapshot of the whole file set, so a new manifest (written at every
//! open and whenever the old one grows large) replaces the old one with a single CURRENT swap.
//! A torn last edit was never acknowledged and is ignored; any other damage fails the open.
//! Torn means cut short: an incomplete last frame, or a bad one followed only by zeros (a file
//! extended by a write that never landed). A complete frame failing its checksum was damaged
//! after it was written, and the first frame (the base, durable before CURRENT named the file)
//! is never torn: both are corruption, reported with the file and offset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::codec::{put_len_prefixed, put_varint, u32_at, Reader};
use crate::error::{Error, Result};
use crate::filenames::{classify, manifest_name, FileKind, CURRENT};
use crate::frame::{encode_frame, BadFrame, FrameIter};
use crate::vfs::{write_atomic, FileRef, Vfs};

const MAGIC: &[u8; 8] = b"QAMANIFS";
/// The manifest format version this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
const HEADER: usize = 16;

/// A table as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDesc {
    /// The level it belongs to.
    pub level: u8,
    /// Its file number.
    pub number: u64,
    /// File size in bytes.
    pub size: u64,
    /// Key versions it holds.
    pub entries: u64,
    /// Smallest internal key (encoded).
    pub smallest: Vec<u8>,
    /// Largest internal key (encoded).
    pub largest: Vec<u8>,
}

/// One change to the file set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// Tables added.
    pub added: Vec<FileDesc>,
    /// Tables removed, as (level, number).
    pub removed: Vec<(u8, u64)>,
    /// The next file number to hand out.
    pub next_file_number: Option<u64>,
    /// Every sequence number at or below this is in the tables.
    pub flushed_seq: Option<u64>,
}

impl VersionEdit {
    /// Encodes the edit.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(n) = self.next_file_number {
            out.push(1);
            put_varint(&mut out, n);
        }
        if let Some(s) = self.flushed_seq {
            out.push(2);
            put_varint(&mut out, s);
        }
        for f in &self.added {
            out.push(3);
            out.push(f.level);
            put_varint(&mut out, f.number);
            put_varint(&mut out, f.size);
            put_varint(&mut out, f.entries);
            put_len_prefixed(&mut out, &f.smallest);
            put_len_prefixed(&mut out, &f.largest);
        }
        for (level, number) in &self.removed {
            out.push(4);
            out.push(*level);
            put_varint(&mut out, *number);
        }
        out
    }

    /// Decodes an edit; `None` if it is malformed or uses an unknown tag.
    pub fn decode(buf: &[u8]) -> Option<VersionEdit> {
        let mut r = Reader::new(buf);
        let mut e = VersionEdit::default();
        while !r.is_empty() {
            match r.u8()? {
                1 => e.next_file_number = Some(r.varint()?),
                2 => e.flushed_seq = Some(r.varint()?),
                3 => e.added.push(FileDesc {
                    level: r.u8()?,
                    number: r.varint()?,
                    size: r.varint()?,
                    entries: r.varint()?,
                    smallest: r.len_prefixed()?.to_vec(),
                    largest: r.len_prefixed()?.to_vec(),
                }),
                4 => e.removed.push((r.u8()?, r.varint()?)),
                _ => return None,
            }
        }
        Some(e)
    }
}

/// The state a manifest describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestState {
    /// Live tables by (level, number).
    pub files: BTreeMap<(u8, u64), FileDesc>,
    /// The next file number to hand out.
    pub next_file_number: u64,
    /// Every sequence number at or below this is in the tables.
    pub flushed_seq: u64,
}

impl ManifestState {
    /// Applies an edit.
    pub fn apply(&mut self, edit: &VersionEdit) {
        for (level, number) in &edit.removed {
            self.files.remove(&(*level, *number));
        }
        for f in &edit.added {
            self.files.insert((f.level, f.number), f.clone());
        }
        if let Some(n) = edit.next_file_number {
            self.next_file_number = self.next_file_number.max(n);
        }
        if let Some(s) = edit.flushed_seq {
            self.flushed_seq = self.flushed_seq.max(s);
        }
    }

    /// A single edit that recreates this state from nothing.
    pub fn snapshot(&self) -> VersionEdit {
        VersionEdit {
            added: self.files.values().cloned().collect(),
            removed: Vec::new(),
            next_file_number: Some(self.next_file_number),
            flushed_seq: Some(self.flushed_seq),
        }
    }
}

/// Reads CURRENT and replays the manifest it names. `Ok(None)` for a directory with no CURRENT
/// (a new engine).
pub fn replay(vfs: &dyn Vfs, dir: &Path) -> Result<Option<(u64, ManifestState)>> {
    let current = dir.join(CURRENT);
    if !vfs.exists(&current)? {
        return Ok(None);
    }
    let raw = vfs.read_all(&current)?;
    let name = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .ok_or_else(|| Error::corruption(&current, 0, "CURRENT is not a manifest name"))?;
    let FileKind::Manifest(number) = classify(name) else {
        return Err(Error::corruption(
            &current,
            0,
            "CURRENT is not a manifest name",
        ));
    };
    let path = dir.join(name);
    if !vfs.exists(&path)? {
        return Err(Error::corruption(
            &current,
            0,
            format!("CURRENT names {name}, which does not exist"),
        ));
    }
    let buf = vfs.read_all(&path)?;
    check_header(&buf).map_err(|r| Error::corruption(&path, 0, r))?;
    let mut state = ManifestState::default();
    let mut frames = FrameIter::new(&buf, HEADER, true);
    let mut has_base = false;
    for frame in frames.by_ref() {
        let (offset, payload) = match frame {
            Ok(f) => f,
            Err(bad) if is_torn(&bad, buf.len()) => {
                tracing::warn!(
                    file = %path.display(),
                    offset = bad.offset,
                    reason = bad.reason,
                    "ignoring a torn edit at the end of the manifest"
                );
                break;
            }
            Err(bad) => {
                let reason = if bad.offset == HEADER {
                    format!(
                        "{} in the base edit (durable before CURRENT named this manifest, so \
                         never torn)",
                        bad.reason
                    )
                } else if bad.complete_end == Some(buf.len()) {
                    format!(
                        "{} in a complete last edit (damage, not a torn write)",
                        bad.reason
                    )
                } else {
                    bad.reason.to_string()
                };
                return Err(Error::corruption(&path, bad.offset as u64, reason));
            }
        };
        let edit = VersionEdit::decode(payload)
            .ok_or_else(|| Error::corruption(&path, offset as u64, "malformed version edit"))?;
        state.apply(&edit);
        has_base = true;
    }
    if !has_base {
        return Err(Error::corruption(
            &path,
            HEADER as u64,
            "the manifest holds no base edit",
        ));
    }
    Ok(Some((number, state)))
}

/// Whether a bad frame is a write cut short by a crash (ignored) rather than damage. Edits are
/// fsynced one at a time, so only the last one can be torn, and the base edit never is.
fn is_torn(bad: &BadFrame, file_len: usize) -> bool {
    if !bad.torn || bad.offset == HEADER {
        return false;
    }
    // A complete frame with nothing after it reached the disk whole: a failing checksum there
    // is a changed byte, not a missing one.
    bad.complete_end != Some(file_len)
}

fn header() -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&MANIFEST_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn check_header(buf: &[u8]) -> Result<(), &'static str> {
    if buf.len() < HEADER || &buf[..8] != MAGIC {
        return Err("bad manifest magic");
    }
    if u32_at(buf, 12) != Some(crc32fast::hash(&buf[..12])) {
        return Err("manifest header checksum mismatch");
    }
    if u32_at(buf, 8) != Some(MANIFEST_VERSION) {
        return Err("unsupported manifest format version");
    }
    Ok(())
}

/// The manifest being appended to.
#[derive(Debug)]
pub struct ManifestWriter {
    file: FileRef,
    path: PathBuf,
    size: u64,
}

impl ManifestWriter {
    /// Writes manifest `number` holding `snapshot`, makes it durable, and points CURRENT at it.
    pub fn create(
        vfs: &dyn Vfs,
        dir: &Path,
        number: u64,
        snapshot: &VersionEdit,
    ) -> Result<ManifestWriter> {
        let path = dir.join(manifest_name(number));
        if vfs.exists(&path)? {
            vfs.remove(&path)?;
        }
        let file = vfs.create(&path)?;
        let mut buf = header().to_vec();
        encode_frame(&mut buf, &snapshot.encode());
        file.write_at(0, &buf)?;
        file.sync_data()?;
        vfs.sync_dir(dir)?;
        let pointer = format!("{}\n", manifest_name(number));
        write_atomic(vfs, &dir.join(CURRENT), pointer.as_bytes())?;
        Ok(ManifestWriter {
            file,
            path,
            size: buf.len() as u64,
        })
    }

    /// Appends an edit and fsyncs it.
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        let mut buf = Vec::new();
        encode_frame(&mut buf, &edit.encode());
        self.file.write_at(self.size, &buf)?;
        self.file.sync_data()?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The manifest's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::SimVfs;

    fn file(level: u8, number: u64) -> FileDesc {
        FileDesc {
            level,
            number,
            size: 100 + number,
            entries: 3,
            smallest: b"aaaaaaaaaaa".to_vec(),
            largest: b"zzzzzzzzzzz".to_vec(),
        }
    }

    #[test]
    fn edits_round_trip_and_unknown_tags_are_refused() {
        let e = VersionEdit {
            added: vec![file(0, 5), file(2, 9)],
            removed: vec![(1, 3)],
            next_file_number: Some(10),
            flushed_seq: Some(1 << 20),
        };
        assert_eq!(VersionEdit::decode(&e.encode()), Some(e));
        assert_eq!(VersionEdit::decode(&[9, 1]), None);
        assert_eq!(VersionEdit::decode(&[3, 0]), None);
    }

    #[test]
    fn replay_rebuilds_the_state_and_ignores_a_torn_tail() {
        let vfs = SimVfs::new(1);
        let dir = Path::new("/db");
        vfs.create_dir_all(dir).unwrap();
        let mut state = ManifestState::default();
        let mut w = ManifestWriter::create(&vfs, dir, 1, &state.snapshot()).unwrap();
        let edits = [
            VersionEdit {
                added: vec![file(0, 2)],
                next_file_number: Some(3),
                flushed_seq: Some(7),
                ..VersionEdit::default()
            },
            VersionEdit {
                added: vec![file(1, 3)],
                removed: vec![(0, 2)],
                next_file_number: Some(4),
                ..VersionEdit::default()
            },
        ];
        for e in &edits {
            w.append(e).unwrap();
            state.apply(e);
        }
        assert_eq!(replay(&vfs, dir).unwrap(), Some((1, state.clone())));
        // A half-written third edit is ignored.
        let len = vfs.file_len(w.path()).unwrap();
        vfs.corrupt(w.path(), len, &[40, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(replay(&vfs, dir).unwrap(), Some((1, state)));
    }

    #[test]
    fn damage_before_the_tail_is_corruption() {
        let vfs = SimVfs::new(1);
        let dir = Path::new("/db");
        vfs.create_dir_all(dir).unwrap();
        let mut w = ManifestWriter::create(&vfs, dir, 4, &VersionEdit::default()).unwrap();
        w.append(&VersionEdit {
            next_file_number: Some(9),
            ..VersionEdit::default()
        })
        .unwrap();
        vfs.corrupt(w.path(), HEADER + 1, &[0xee]).unwrap();
        let err = replay(&vfs, dir).unwrap_err();
        assert!(matches!(err, Error::Corruption { offset, .. } if offset == HEADER as u64));
    }
}
