//! WAL segment files: naming, the header, and the recovery scan.
//!
//! A segment is `wal-<first index, 20 digits>.log`:
//!
//! ```text
//! header (32 bytes): magic "QAWALSEG" | version u32 | reserved u32 | first_index u64 |
//!                    crc32 of the preceding 24 bytes | zero padding
//! frames:            one per entry (see `frame.rs`), payload = index u64 | term u64 | data
//! ```
//!
//! A new segment is written under a `.tmp` name and renamed into place by the flusher only after
//! the previous segment is fully fsynced, so every segment but the last is complete on disk and
//! only the last can have a torn tail.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::entry::{WalEntry, ENTRY_FIXED};
use crate::codec::{u32_at, u64_at};
use crate::error::{Error, Result};
use crate::frame::{FrameIter, FRAME_HEADER};
use crate::vfs::FileRef;

const MAGIC: &[u8; 8] = b"QAWALSEG";
/// The segment format version this code writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Bytes of segment header before the first frame.
pub const SEGMENT_HEADER: usize = 32;

/// The file name of the segment whose first entry is `first_index`.
pub fn segment_name(first_index: u64) -> String {
    format!("wal-{first_index:020}.log")
}

/// The first index encoded in a segment file name, if `name` is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at `first_index`.
pub fn encode_header(first_index: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header and returns its first index.
pub fn decode_header(buf: &[u8]) -> Result<u64, &'static str> {
    if buf.len() < SEGMENT_HEADER {
        return Err("segment shorter than its header");
    }
    if &buf[0..8] != MAGIC {
        return Err("bad segment magic");
    }
    if u32_at(buf, 24) != Some(crc32fast::hash(&buf[0..24])) {
        return Err("segment header checksum mismatch");
    }
    if u32_at(buf, 8) != Some(SEGMENT_VERSION) {
        return Err("unsupported segment format version");
    }
    u64_at(buf, 16).ok_or("segment shorter than its header")
}

const INDEX_OUT_OF_RANGE: &str = "entry index past the largest log index";

/// The index of the entry `held` places after `first`, if there can be one: the largest index
/// is kept free so that the index after any entry (a segment's next index) still exists.
fn next_log_index(first: u64, held: usize) -> Option<u64> {
    first
        .checked_add(u64::try_from(held).ok()?)
        .filter(|&i| i < u64::MAX)
}

/// Where one entry's frame sits in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLoc {
    /// Offset of the frame header.
    pub offset: u64,
    /// Length of the whole frame.
    pub len: u32,
    /// The entry's term (kept in memory so term lookups need no I/O).
    pub term: u64,
}

/// A live segment of the log.
#[derive(Debug)]
pub struct Segment {
    /// Index of the segment's first entry.
    pub first_index: u64,
    /// The segment's final file name (a new segment may still be under its `.tmp` name until
    /// the flusher renames it).
    pub path: PathBuf,
    /// Open handle used for appends and reads.
    pub file: FileRef,
    /// One location per entry, in index order.
    pub entries: Vec<EntryLoc>,
    /// Bytes written so far (header included).
    pub size: u64,
}

impl Segment {
    /// The index the next appended entry must have.
    pub fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }

    /// Index of the last entry, if the segment has any.
    pub fn last_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.next_index() - 1)
    }

    /// Whether every entry this segment holds (or, if empty, will hold next) is at or below
    /// the purge point `purged`.
    pub fn fully_purged(&self, purged: u64) -> bool {
        match self.last_index() {
            Some(last) => last <= purged,
            None => self.first_index <= purged,
        }
    }

    /// Location of the entry at `index`, if this segment holds it.
    pub fn loc(&self, index: u64) -> Option<&EntryLoc> {
        let i = index.checked_sub(self.first_index)?;
        self.entries.get(usize::try_from(i).ok()?)
    }
}

/// What the recovery scan found in one segment.
#[derive(Debug)]
pub struct Scan {
    /// Entries found, in order.
    pub entries: Vec<EntryLoc>,
    /// Bytes up to the end of the last good frame.
    pub valid_len: u64,
    /// A torn tail to cut: (offset, reason).
    pub torn: Option<(u64, &'static str)>,
}

/// Scans a whole segment read into `buf`. Every frame's checksums are verified and every entry
/// must carry the next index and a term no lower than the one before. `is_last` allows a torn
/// tail; any other damage is corruption naming the file and offset.
pub fn scan(path: &Path, buf: &[u8], first_index: u64, is_last: bool) -> Result<Scan> {
    let header_index = decode_header(buf).map_err(|reason| Error::corruption(path, 0, reason))?;
    if header_index != first_index {
        return Err(Error::corruption(
            path,
            16,
            format!("header says first index {header_index}, file name says {first_index}"),
        ));
    }
    let mut entries = Vec::new();
    let mut last_term = 0;
    let mut frames = FrameIter::new(buf, SEGMENT_HEADER, is_last);
    let mut torn = None;
    for frame in frames.by_ref() {
        let (offset, payload) = match frame {
            Ok(f) => f,
            Err(bad) if bad.torn => {
                torn = Some((bad.offset as u64, bad.reason));
                break;
            }
            Err(bad) => return Err(Error::corruption(path, bad.offset as u64, bad.reason)),
        };
        let Some(expected) = next_log_index(first_index, entries.len()) else {
            return Err(Error::corruption(path, offset as u64, INDEX_OUT_OF_RANGE));
        };
        let (Some(index), Some(term)) = (u64_at(payload, 0), u64_at(payload, 8)) else {
            return Err(Error::corruption(
                path,
                offset as u64,
                "entry shorter than its fields",
            ));
        };
        if index != expected {
            return Err(Error::corruption(
                path,
                offset as u64,
                format!("entry has index {index} where {expected} was expected"),
            ));
        }
        if term < last_term {
            return Err(Error::corruption(
                path,
                offset as u64,
                format!("entry {index} has term {term}, below the previous entry's {last_term}"),
            ));
        }
        last_term = term;
        entries.push(EntryLoc {
            offset: offset as u64,
            len: (FRAME_HEADER + payload.len()) as u32,
            term,
        });
    }
    let valid_len = torn.map_or(buf.len() as u64, |(off, _)| off);
    Ok(Scan {
        entries,
        valid_len,
        torn,
    })
}

/// Reads and verifies `count` consecutive entries starting at `first`, whose frames occupy
/// `bytes` (read from `path` at `base`).
pub fn decode_entries(
    path: &Path,
    base: u64,
    bytes: Bytes,
    first: u64,
    count: usize,
) -> Result<Vec<WalEntry>> {
    let mut out = Vec::with_capacity(count);
    for frame in FrameIter::new(&bytes, 0, false) {
        let (offset, payload) =
            frame.map_err(|bad| Error::corruption(path, base + bad.offset as u64, bad.reason))?;
        let start = offset + FRAME_HEADER;
        let shared = bytes.slice(start..start + payload.len());
        // The bytes were located by the in-memory index, but the file may have changed since:
        // a frame beyond the count or past the largest index is damage, not an entry.
        if out.len() == count {
            return Err(Error::corruption(
                path,
                base + offset as u64,
                format!("more frames than the {count} entries expected"),
            ));
        }
        let Some(expected) = next_log_index(first, out.len()) else {
            return Err(Error::corruption(
                path,
                base + offset as u64,
                INDEX_OUT_OF_RANGE,
            ));
        };
        match WalEntry::decode(&shared) {
            Some(e) if e.index == expected && shared.len() >= ENTRY_FIXED => out.push(e),
            _ => {
                return Err(Error::corruption(
                    path,
                    base + offset as u64,
                    format!("entry {expected} not found where the index says it is"),
                ))
            }
        }
    }
    if out.len() != count {
        return Err(Error::corruption(
            path,
            base,
            format!("expected {count} entries, read {}", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_strangers() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("wal-42.log"), None);
        assert_eq!(parse_segment_name("wal-00000000000000000042.log.tmp"), None);
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = encode_header(7);
        assert_eq!(decode_header(&h), Ok(7));
        let mut bad = h;
        bad[17] ^= 1;
        assert!(decode_header(&bad).is_err());
    }

    fn frames(entries: &[(u64, u64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        for &(index, term) in entries {
            let mut payload = index.to_le_bytes().to_vec();
            payload.extend_from_slice(&term.to_le_bytes());
            crate::frame::encode_frame(&mut buf, &payload);
        }
        buf
    }

    #[test]
    fn a_segment_running_into_the_largest_index_is_corruption_not_an_overflow() {
        let path = Path::new("wal-18446744073709551614.log");
        let first = u64::MAX - 1;
        let mut buf = encode_header(first).to_vec();
        buf.extend_from_slice(&frames(&[(first, 1)]));
        let one = scan(path, &buf, first, true).unwrap();
        assert_eq!(one.entries.len(), 1);
        buf.extend_from_slice(&frames(&[(u64::MAX, 1)]));
        let err = scan(path, &buf, first, true).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { offset, .. } if *offset == 32 + 28),
            "{err}"
        );
    }

    #[test]
    fn a_read_finding_more_frames_than_entries_is_corruption_not_an_overflow() {
        let path = Path::new("wal-00000000000000000001.log");
        let first = u64::MAX - 1;
        let bytes = Bytes::from(frames(&[(first, 1), (u64::MAX, 1)]));
        assert_eq!(
            decode_entries(path, 100, bytes.slice(..28), first, 1).unwrap()[0].index,
            first
        );
        for count in [1, 2] {
            let err = decode_entries(path, 100, bytes.clone(), first, count).unwrap_err();
            assert!(
                matches!(&err, Error::Corruption { offset, .. } if *offset == 128),
                "{count}: {err}"
            );
        }
        let at_max = Bytes::from(frames(&[(u64::MAX, 1), (u64::MAX, 1)]));
        assert!(decode_entries(path, 0, at_max, u64::MAX, 2).is_err());
    }
}
