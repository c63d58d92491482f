//! Helpers shared by the fuzz targets.
//!
//! Most stored formats guard their bytes with CRC32s. A mutated input almost never carries a
//! matching checksum, so on its own the fuzzer would only ever exercise the "checksum mismatch"
//! branch. The `reseal_*` functions recompute every checksum of a format in place, wherever the
//! (possibly mutated) lengths and handles place them, so that a target can feed the decoder
//! both the raw input and a resealed copy: the first tests that damage is caught, the second
//! tests the parsing behind the checksum. None of this relaxes a decoder's checks.

/// Bytes of a record frame's header (length, payload CRC, header CRC).
const FRAME_HEADER: usize = 12;
/// Bytes of a WAL segment header.
const WAL_SEGMENT_HEADER: usize = 32;
/// Bytes of a WAL metadata slot's header before its payload.
const WAL_META_SLOT_HEADER: usize = 20;
/// Bytes of a manifest header.
const MANIFEST_HEADER: usize = 16;
/// Bytes of a table footer.
const TABLE_FOOTER: usize = 64;

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn put_crc(buf: &mut [u8], at: usize, covered: std::ops::Range<usize>) {
    let crc = crc32fast::hash(&buf[covered]);
    buf[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes the checksums of the frames that follow each other from `start`, as far as their
/// length fields chain within the buffer. Returns how many frames are whole.
pub fn reseal_frames(buf: &mut [u8], start: usize) -> usize {
    let mut pos = start;
    let mut whole = 0;
    while let Some(len) = u32_at(buf, pos) {
        let payload = pos + FRAME_HEADER;
        if payload > buf.len() {
            break;
        }
        let end = payload.saturating_add(len as usize);
        if end <= buf.len() {
            put_crc(buf, pos + 4, payload..end);
        }
        put_crc(buf, pos + 8, pos..pos + 8);
        if end > buf.len() {
            break;
        }
        whole += 1;
        pos = end;
    }
    whole
}

/// Reseals a WAL segment: its header, then its frames. Returns how many frames are whole.
pub fn reseal_wal_segment(buf: &mut [u8]) -> usize {
    if buf.len() >= 28 {
        put_crc(buf, 24, 0..24);
    }
    if buf.len() < WAL_SEGMENT_HEADER {
        return 0;
    }
    reseal_frames(buf, WAL_SEGMENT_HEADER)
}

/// Reseals one slot of the WAL metadata file, where its payload length places the checksum.
pub fn reseal_wal_meta_slot(buf: &mut [u8]) {
    let Some(len) = u32_at(buf, 16) else {
        return;
    };
    let end = WAL_META_SLOT_HEADER.saturating_add(len as usize);
    if end.checked_add(4).is_some_and(|e| e <= buf.len()) {
        put_crc(buf, end, 0..end);
    }
}

/// Reseals a buffer whose last four bytes are the CRC32 of everything before them (table
/// blocks, the checkpoint metadata file).
pub fn reseal_trailer(buf: &mut [u8]) {
    if let Some(body) = buf.len().checked_sub(4) {
        put_crc(buf, body, 0..body);
    }
}

/// Reseals a table footer: the last 64 bytes of the buffer.
pub fn reseal_footer(buf: &mut [u8]) {
    if let Some(at) = buf.len().checked_sub(TABLE_FOOTER) {
        put_crc(buf, at + 52, at..at + 52);
    }
}

/// Reseals a manifest: its header, then its edit frames.
pub fn reseal_manifest(buf: &mut [u8]) {
    if buf.len() >= MANIFEST_HEADER {
        put_crc(buf, 12, 0..12);
        reseal_frames(buf, MANIFEST_HEADER);
    }
}

/// A block's byte range from its handle, if it lies within `limit` and can hold a checksum.
fn block_range(offset: u64, len: u64, limit: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (len >= 4 && end <= limit).then_some(start..end)
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The data block handles listed in an index block body.
fn index_handles(body: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let Some(count) = u32_at(body, 0) else {
        return out;
    };
    let mut pos = 4;
    for _ in 0..count.min(4096) {
        let Some(key_len) = varint(body, &mut pos) else {
            break;
        };
        let Some(after_key) = usize::try_from(key_len)
            .ok()
            .and_then(|n| pos.checked_add(n))
        else {
            break;
        };
        pos = after_key;
        let (Some(offset), Some(len)) = (varint(body, &mut pos), varint(body, &mut pos)) else {
            break;
        };
        out.push((offset, len));
    }
    out
}

/// Reseals a whole table: the data blocks its index lists, the index, filter and properties
/// blocks its footer points at, then the footer.
pub fn reseal_table(buf: &mut [u8]) {
    let Some(footer_at) = buf.len().checked_sub(TABLE_FOOTER) else {
        return;
    };
    let handle = |buf: &[u8], i: usize| {
        let offset = u64_at(buf, footer_at + i * 16)?;
        let len = u64_at(buf, footer_at + i * 16 + 8)?;
        block_range(offset, len, footer_at)
    };
    if let Some(index) = handle(buf, 0) {
        let body = &buf[index.start..index.end - 4];
        for (offset, len) in index_handles(body) {
            if let Some(r) = block_range(offset, len, footer_at) {
                reseal_trailer(&mut buf[r]);
            }
        }
    }
    // The index last: a data block may overlap it in a mutated file.
    for i in [2, 1, 0] {
        if let Some(r) = handle(buf, i) {
            reseal_trailer(&mut buf[r]);
        }
    }
    reseal_footer(buf);
}

/// Splits `data` at its first byte: a selector for targets that feed several decoders, and
/// the rest.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&s, rest)| (s, rest))
}
