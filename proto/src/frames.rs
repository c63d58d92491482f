//! Subscription frames as a server sends them: events encoded once, shared by every stream.
//!
//! A node fans one committed batch out to many streams. Encoding each event once per batch and
//! copying the same bytes into every stream's frame costs a copy per subscriber instead of a
//! clone and an encode. On the wire nothing changes: a frame of pre-encoded events is written
//! as the [`SubscribeResponse`] whose [`EventBatch`] holds those events, byte for byte what
//! encoding the messages would give, so every client reads the `.proto`'s messages.
//!
//! [`EventBatch`]: crate::v1::EventBatch

use bytes::{BufMut, Bytes};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::Status;

use crate::v1::{SubscribeRequest, SubscribeResponse};

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/qastore.v1.Feed.rs"));
}

/// The `Feed` service's server: `Subscribe` answers with [`SubscribeFrame`]s.
pub use generated::feed_server;

/// The field number of `SubscribeResponse.events` and of `EventBatch.events`.
const EVENTS_FIELD: u32 = 1;

/// One frame of a subscription stream, as the server sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscribeFrame {
    /// Events, in position order, each the encoding of one `Event` message.
    Events(Vec<Bytes>),
    /// Any other frame (progress, snapshot parts), as a message.
    Message(SubscribeResponse),
}

impl SubscribeFrame {
    /// The encoded length of this frame's `SubscribeResponse`.
    pub fn encoded_len(&self) -> usize {
        match self {
            SubscribeFrame::Events(events) => {
                let body = batch_body_len(events);
                key_len(EVENTS_FIELD) + encoded_len_varint(body as u64) + body
            }
            SubscribeFrame::Message(m) => m.encoded_len(),
        }
    }

    /// Writes this frame as its `SubscribeResponse`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            SubscribeFrame::Events(events) => {
                encode_key(EVENTS_FIELD, WireType::LengthDelimited, buf);
                encode_varint(batch_body_len(events) as u64, buf);
                for e in events {
                    encode_key(EVENTS_FIELD, WireType::LengthDelimited, buf);
                    encode_varint(e.len() as u64, buf);
                    buf.put_slice(e);
                }
            }
            SubscribeFrame::Message(m) => {
                // A message only fails to encode into a buffer without room; `BufMut`s that
                // grow (as tonic's does) always have it.
                let _ = m.encode(buf);
            }
        }
    }
}

/// The length of an `EventBatch` holding `events`.
fn batch_body_len(events: &[Bytes]) -> usize {
    events
        .iter()
        .map(|e| key_len(EVENTS_FIELD) + encoded_len_varint(e.len() as u64) + e.len())
        .sum()
}

/// The codec of the `Subscribe` call on the server: decodes requests as messages, writes
/// [`SubscribeFrame`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscribeCodec;

impl Codec for SubscribeCodec {
    type Encode = SubscribeFrame;
    type Decode = SubscribeRequest;
    type Encoder = FrameEncoder;
    type Decoder = tonic_prost::ProstDecoder<SubscribeRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Writes [`SubscribeFrame`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameEncoder;

impl Encoder for FrameEncoder {
    type Item = SubscribeFrame;
    type Error = Status;

    fn encode(&mut self, item: SubscribeFrame, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // A frame of many events is megabytes: room for all of it at once, not one regrowth
        // (and copy of what is written so far) after another.
        dst.reserve(item.encoded_len());
        item.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{self as pb, subscribe_response::Frame};

    fn event(index: u64, ordinal: u32, instrument: &str) -> pb::Event {
        pb::Event {
            position: Some(pb::Position {
                log_index: index,
                ordinal,
            }),
            record: Some(pb::Record {
                kind: Some(pb::record::Kind::Tick(pb::Tick {
                    instrument_id: instrument.into(),
                    last_price: 3912.5,
                    volume: 17,
                    ..Default::default()
                })),
            }),
            result: None,
            commit_time_ns: 1_733_100_000_000_000_000,
            merged: 1,
        }
    }

    #[test]
    fn events_encoded_once_read_back_as_the_message_they_were() {
        // Enough events for a multi-byte length prefix on the batch.
        let events: Vec<pb::Event> = (0..300)
            .map(|i| event(7 + i / 10, (i % 10) as u32, "SHFE.rb2501"))
            .collect();
        let message = SubscribeResponse {
            frame: Some(Frame::Events(pb::EventBatch {
                events: events.clone(),
            })),
        };
        let frame = SubscribeFrame::Events(
            events
                .iter()
                .map(|e| Bytes::from(e.encode_to_vec()))
                .collect(),
        );
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        assert_eq!(wire, message.encode_to_vec());
        assert_eq!(frame.encoded_len(), wire.len());
        assert_eq!(SubscribeResponse::decode(wire.as_slice()).unwrap(), message);
    }

    #[test]
    fn other_frames_are_written_as_their_message() {
        let message = SubscribeResponse {
            frame: Some(Frame::Progress(pb::Progress {
                applied: Some(pb::Position {
                    log_index: 9,
                    ordinal: u32::MAX,
                }),
                commit_time_ns: 5,
                node_id: 2,
            })),
        };
        let frame = SubscribeFrame::Message(message.clone());
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        assert_eq!(wire, message.encode_to_vec());
        assert_eq!(frame.encoded_len(), wire.len());
    }
}
