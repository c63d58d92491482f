//! The append stream's own wire format, spoken on the peer port beside gRPC.
//!
//! Replication is the one peer call that runs all the time, and over gRPC every append and
//! every answer went through HTTP/2's framing and two extra task hand-offs on each side (the
//! client's body pipe and the server's stream task). This format carries the same protobuf
//! messages as the `Append` call, each in a length-prefixed frame on a connection of its own:
//!
//! * The caller opens with [`MAGIC`] (where an HTTP/2 client sends its preface, so the port
//!   tells the two apart from the first 24 bytes), then a [`Frame::Hello`] naming the cluster
//!   and both nodes; the node answers [`Frame::Welcome`] or [`Frame::Refused`] (and closes),
//!   checked as a gRPC call's metadata and certificate are.
//! * A stream is [`Frame::Append`]s, then [`Frame::End`] when the caller has nothing more to
//!   send; the node answers each append with a [`Frame::Answer`], in order, and ends with
//!   [`Frame::Done`]. A done frame that says the connection is reusable lets the caller start
//!   the next stream on it; otherwise (an error, an input that did not end) it is closed.
//!
//! Every frame is a 4-byte big-endian length, then its kind byte and its payload.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use qastore_proto::v1 as pb;
use tokio_util::codec::LengthDelimitedCodec;
use tonic::{Code, Status};

use super::server::MAX_MESSAGE_BYTES;
use crate::types::NodeId;

/// What an append-stream caller sends first: as long as HTTP/2's preface, which it replaces.
pub const MAGIC: &[u8; 24] = b"QASTORE-APPEND-STREAM/1\n";

/// What an HTTP/2 (gRPC) caller sends first.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The framing: a length before every frame, at most one message of the peer service's size
/// limit (and its kind byte).
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_MESSAGE_BYTES + 1)
        .new_codec()
}

/// One frame of an append-stream connection.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Caller to node, once: who is calling whom.
    Hello {
        /// The caller's cluster.
        cluster: String,
        /// The calling node.
        from: NodeId,
        /// The node the caller means to reach.
        to: NodeId,
    },
    /// Node to caller: the hello was accepted.
    Welcome,
    /// Node to caller: the hello was refused, and why; the node closes the connection.
    Refused(Status),
    /// Caller to node: entries to append.
    Append(pb::AppendRequest),
    /// Caller to node: the stream has nothing more to send.
    End,
    /// Node to caller: the answer to the oldest unanswered append.
    Answer(pb::AppendResponse),
    /// Node to caller: the stream is over. `reusable`: the node read the caller's end and will
    /// take another stream on this connection; `error`: why it ended early.
    Done {
        /// Whether another stream may follow on the same connection.
        reusable: bool,
        /// Why the stream ended before its end, if it did.
        error: Option<Status>,
    },
}

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const REFUSED: u8 = 3;
const APPEND: u8 = 4;
const END: u8 = 5;
const ANSWER: u8 = 6;
const DONE: u8 = 7;

fn put_status(out: &mut BytesMut, status: &Status) {
    out.put_i32(status.code() as i32);
    out.put_slice(status.message().as_bytes());
}

fn take_status(mut payload: Bytes) -> io::Result<Status> {
    if payload.len() < 4 {
        return Err(malformed("a status frame shorter than its code"));
    }
    let code = Code::from_i32(payload.get_i32());
    let message = String::from_utf8_lossy(&payload).into_owned();
    Ok(Status::new(code, message))
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("append stream: {what}"))
}

impl Frame {
    /// The frame's bytes, without the length the codec puts before them.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Frame::Hello { cluster, from, to } => {
                out.put_u8(HELLO);
                out.put_u64(*from);
                out.put_u64(*to);
                out.put_slice(cluster.as_bytes());
            }
            Frame::Welcome => out.put_u8(WELCOME),
            Frame::Refused(status) => {
                out.put_u8(REFUSED);
                put_status(&mut out, status);
            }
            Frame::Append(request) => {
                out.reserve(1 + request.encoded_len());
                out.put_u8(APPEND);
                // Cannot fail: the buffer was given the room the message needs.
                let _ = request.encode(&mut out);
            }
            Frame::End => out.put_u8(END),
            Frame::Answer(answer) => {
                out.reserve(1 + answer.encoded_len());
                out.put_u8(ANSWER);
                let _ = answer.encode(&mut out);
            }
            Frame::Done { reusable, error } => {
                out.put_u8(DONE);
                out.put_u8(u8::from(*reusable));
                if let Some(status) = error {
                    put_status(&mut out, status);
                }
            }
        }
        out.freeze()
    }

    /// Reads a frame the codec cut out.
    pub fn decode(frame: BytesMut) -> io::Result<Frame> {
        let mut payload = frame.freeze();
        if payload.is_empty() {
            return Err(malformed("an empty frame"));
        }
        let kind = payload.get_u8();
        let protobuf = |e: prost::DecodeError| malformed(&e.to_string());
        Ok(match kind {
            HELLO => {
                if payload.len() < 16 {
                    return Err(malformed("a hello shorter than its node ids"));
                }
                let from = payload.get_u64();
                let to = payload.get_u64();
                let cluster = String::from_utf8(payload.to_vec())
                    .map_err(|_| malformed("a cluster id that is not UTF-8"))?;
                Frame::Hello { cluster, from, to }
            }
            WELCOME => Frame::Welcome,
            REFUSED => Frame::Refused(take_status(payload)?),
            APPEND => Frame::Append(pb::AppendRequest::decode(payload).map_err(protobuf)?),
            END => Frame::End,
            ANSWER => Frame::Answer(pb::AppendResponse::decode(payload).map_err(protobuf)?),
            DONE => {
                if payload.is_empty() {
                    return Err(malformed("a done frame without its flag"));
                }
                let reusable = payload.get_u8() == 1;
                let error = if payload.is_empty() {
                    None
                } else {
                    Some(take_status(payload)?)
                };
                Frame::Done { reusable, error }
            }
            other => return Err(malformed(&format!("unknown frame kind {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) -> Frame {
        let bytes = frame.encode();
        match Frame::decode(BytesMut::from(&bytes[..])) {
            Ok(f) => f,
            Err(e) => panic!("{frame:?} did not decode: {e}"),
        }
    }

    #[test]
    fn every_frame_reads_back_as_written() {
        let frames = [
            Frame::Hello {
                cluster: "exchange-1".into(),
                from: 1,
                to: 3,
            },
            Frame::Welcome,
            Frame::Append(pb::AppendRequest {
                vote: Some(pb::Vote {
                    term: 4,
                    node_id: 1,
                    committed: true,
                }),
                prev_log_id: Some(pb::LogId { term: 4, index: 9 }),
                entries: vec![b"entry one".to_vec().into(), b"entry two".to_vec().into()],
                leader_commit: Some(pb::LogId { term: 4, index: 8 }),
            }),
            Frame::End,
            Frame::Answer(pb::AppendResponse {
                result: Some(pb::append_response::Result::Flushed(pb::Flushed {
                    last: Some(pb::LogId { term: 4, index: 11 }),
                })),
            }),
            Frame::Done {
                reusable: true,
                error: None,
            },
        ];
        for frame in frames {
            assert_eq!(round_trip(frame.clone()).encode(), frame.encode());
        }
    }

    #[test]
    fn statuses_keep_their_code_and_message() {
        let refused = round_trip(Frame::Refused(Status::permission_denied(
            "not this cluster",
        )));
        let Frame::Refused(status) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "not this cluster");
        let done = round_trip(Frame::Done {
            reusable: false,
            error: Some(Status::invalid_argument("append.entries[0] is damaged")),
        });
        let Frame::Done {
            reusable: false,
            error: Some(status),
        } = done
        else {
            panic!("expected a failed done frame, got {done:?}");
        };
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "append.entries[0] is damaged");
    }

    #[test]
    fn damaged_frames_are_refused_not_guessed() {
        for bytes in [
            &[][..],
            &[HELLO, 0, 0, 0][..],
            &[REFUSED, 0][..],
            &[DONE][..],
            &[APPEND, 0xff, 0xff][..],
            &[99][..],
        ] {
            assert!(
                Frame::decode(BytesMut::from(bytes)).is_err(),
                "{bytes:?} decoded"
            );
        }
    }

    #[test]
    fn the_magic_is_as_long_as_the_http2_preface() {
        assert_eq!(MAGIC.len(), H2_PREFACE.len());
        assert_ne!(MAGIC, H2_PREFACE);
    }
}
