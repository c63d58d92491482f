//! Checksummed record framing shared by the WAL segments and the manifest.
//!
//! A frame is a 12-byte header followed by the payload:
//!
//! ```text
//! +-------------+-----------------+----------------------------+-----------+
//! | len: u32 LE | payload_crc u32 | header_crc u32 (bytes 0..8)| payload   |
//! +-------------+-----------------+----------------------------+-----------+
//! ```
//!
//! The header carries its own CRC so that a damaged length is recognised as damage rather than
//! read as "the record continues past the end of the file".
//!
//! Recovery rule: at the tail of the last file of a log, an incomplete frame, or a
//! bad frame followed only by zeros or the end of the file, is a torn write: it was never
//! fsynced, so never acknowledged, and is cut off. Any other bad frame is corruption.

use crate::codec::u32_at;

/// Bytes of frame header before the payload.
pub const FRAME_HEADER: usize = 12;

/// The largest payload a frame can carry.
pub const MAX_FRAME_PAYLOAD: usize = u32::MAX as usize;

/// Appends one frame holding `payload` to `out`.
pub fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let start = begin_frame(out);
    out.extend_from_slice(payload);
    end_frame(out, start);
}

/// Starts a frame whose payload the caller appends to `out` directly (saving a copy); returns
/// the frame's start for [`end_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    start
}

/// Fills in the header of the frame started at `start`, whose payload is everything appended
/// to `out` since.
pub fn end_frame(out: &mut [u8], start: usize) {
    let payload_len = out.len() - start - FRAME_HEADER;
    let payload_crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    /// Offset of the frame's first byte.
    pub offset: usize,
    /// True if the damage is a torn write at the tail that may be cut off.
    pub torn: bool,
    /// Where the frame ends, if its header checked out and its whole payload lies within the
    /// buffer: such a frame was not cut short, whatever is wrong with its payload.
    pub complete_end: Option<usize>,
    /// What was wrong.
    pub reason: &'static str,
}

/// Iterates over the frames of a buffer, starting at a given offset.
#[derive(Debug)]
pub struct FrameIter<'a> {
    buf: &'a [u8],
    pos: usize,
    tail_may_tear: bool,
    done: bool,
}

impl<'a> FrameIter<'a> {
    /// Reads frames of `buf` from `start`. `tail_may_tear` says whether this is the last file of
    /// its log, the only place a torn write can be.
    pub fn new(buf: &'a [u8], start: usize, tail_may_tear: bool) -> Self {
        FrameIter {
            buf,
            pos: start,
            tail_may_tear,
            done: false,
        }
    }

    fn bad(&mut self, reason: &'static str, torn_if_zeros_from: Option<usize>) -> BadFrame {
        self.bad_frame(reason, torn_if_zeros_from, None)
    }

    fn bad_frame(
        &mut self,
        reason: &'static str,
        torn_if_zeros_from: Option<usize>,
        complete_end: Option<usize>,
    ) -> BadFrame {
        self.done = true;
        let torn = self.tail_may_tear
            && match torn_if_zeros_from {
                None => true,
                Some(from) => self.buf.get(from..).unwrap_or(&[]).iter().all(|&b| b == 0),
            };
        BadFrame {
            offset: self.pos,
            torn,
            complete_end,
            reason,
        }
    }
}

impl<'a> Iterator for FrameIter<'a> {
    /// The frame's offset and payload, or why it could not be read.
    type Item = Result<(usize, &'a [u8]), BadFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let pos = self.pos;
        if self.buf.len() - pos < FRAME_HEADER {
            return Some(Err(self.bad("incomplete frame header", None)));
        }
        let (Some(len), Some(payload_crc), Some(header_crc)) = (
            u32_at(self.buf, pos),
            u32_at(self.buf, pos + 4),
            u32_at(self.buf, pos + 8),
        ) else {
            return Some(Err(self.bad("incomplete frame header", None)));
        };
        if crc32fast::hash(&self.buf[pos..pos + 8]) != header_crc {
            return Some(Err(
                self.bad("frame header checksum mismatch", Some(pos + FRAME_HEADER))
            ));
        }
        let start = pos + FRAME_HEADER;
        let end = start + len as usize;
        if end > self.buf.len() {
            return Some(Err(self.bad("frame extends past the end of the file", None)));
        }
        let payload = &self.buf[start..end];
        if crc32fast::hash(payload) != payload_crc {
            return Some(Err(self.bad_frame(
                "frame payload checksum mismatch",
                Some(end),
                Some(end),
            )));
        }
        self.pos = end;
        Some(Ok((pos, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_frames() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_frame(&mut buf, b"first");
        encode_frame(&mut buf, b"second");
        buf
    }

    #[test]
    fn frames_round_trip() {
        let buf = two_frames();
        let got: Vec<_> = FrameIter::new(&buf, 0, true).collect();
        assert_eq!(got, vec![Ok((0, &b"first"[..])), Ok((17, &b"second"[..]))]);
    }

    #[test]
    fn every_truncation_of_the_last_frame_is_torn() {
        let buf = two_frames();
        for cut in 18..buf.len() {
            let got: Vec<_> = FrameIter::new(&buf[..cut], 0, true).collect();
            assert_eq!(got.len(), 2, "cut at {cut}");
            let bad = got[1].clone().unwrap_err();
            assert!(bad.torn && bad.offset == 17, "cut at {cut}: {bad:?}");
        }
    }

    #[test]
    fn zero_filled_tail_is_torn_but_not_in_an_earlier_file() {
        let mut buf = two_frames();
        buf.extend_from_slice(&[0u8; 40]);
        let bad = FrameIter::new(&buf, 0, true).nth(2).unwrap().unwrap_err();
        assert!(bad.torn);
        let bad = FrameIter::new(&buf, 0, false).nth(2).unwrap().unwrap_err();
        assert!(!bad.torn);
    }

    #[test]
    fn flipped_byte_followed_by_data_is_corruption() {
        let mut buf = two_frames();
        buf[14] ^= 0x01; // inside "first"
        let bad = FrameIter::new(&buf, 0, true).next().unwrap().unwrap_err();
        assert_eq!(bad.offset, 0);
        assert!(!bad.torn);
        let mut buf = two_frames();
        buf[1] ^= 0x01; // inside the length
        let bad = FrameIter::new(&buf, 0, true).next().unwrap().unwrap_err();
        assert!(!bad.torn);
    }

    #[test]
    fn flipped_byte_in_the_last_frame_with_nothing_after_is_torn() {
        let mut buf = two_frames();
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let bad = FrameIter::new(&buf, 0, true).nth(1).unwrap().unwrap_err();
        assert!(bad.torn);
    }
}
