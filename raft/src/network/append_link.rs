//! The caller's side of the append stream's own framing ([`append_wire`](super::append_wire)):
//! connections to each peer, kept between streams, and one stream of appends over one.
//!
//! Openraft opens a stream for every heartbeat as well as for replication, so a connection is
//! reused: a stream that the peer ended cleanly, after the caller's end, gives its connection
//! back to an idle pool (a few per peer); any other end closes it. A pooled connection that
//! the peer closed meanwhile is noticed when it is taken (it reads as ended) and dropped.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use parking_lot::Mutex;
use qastore_proto::v1 as pb;
use qastore_security::tls::ReloadingTls;
use qastore_security::Dialed;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tonic::Status;

use super::append_wire::{codec, Frame, MAGIC};
use crate::types::NodeId;

/// Idle connections kept per peer address: one for replication and one for heartbeats.
const IDLE_PER_PEER: usize = 2;

/// Reads frames from a peer.
pub type LinkReader = FramedRead<ReadHalf<Dialed>, LengthDelimitedCodec>;
/// Writes frames to a peer.
pub type LinkWriter = FramedWrite<WriteHalf<Dialed>, LengthDelimitedCodec>;

/// A connection to a peer that accepted this node's hello.
pub struct Link {
    /// Frames from the peer.
    pub reader: LinkReader,
    /// Frames to the peer.
    pub writer: LinkWriter,
}

impl Link {
    /// Whether the peer has closed the connection (or sent something unasked) while it sat
    /// idle. Looks without waiting.
    fn closed_while_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        !matches!(Pin::new(&mut self.reader).poll_next(&mut cx), Poll::Pending)
    }
}

/// Why a link could not be opened.
pub enum OpenError {
    /// The peer could not be reached, or the connection broke during the greeting.
    Io(io::Error),
    /// The peer refused the hello.
    Refused(Status),
}

/// Who this node is, for the hello.
#[derive(Debug, Clone)]
pub struct Caller {
    /// This node's cluster.
    pub cluster: String,
    /// This node.
    pub node_id: NodeId,
}

/// Idle connections to peers, by address and the TLS material they were made with.
#[derive(Default)]
pub struct LinkPool {
    idle: Mutex<HashMap<(String, u64), Vec<Link>>>,
}

impl LinkPool {
    /// A connection to `target` at `addr`: an idle one, or a new one (dialed within
    /// `timeout`, the hello answered within it too).
    pub async fn take(
        &self,
        caller: &Caller,
        target: NodeId,
        addr: &str,
        tls: Option<&ReloadingTls>,
        timeout: Duration,
    ) -> Result<Link, OpenError> {
        let key = (addr.to_string(), tls.map_or(0, ReloadingTls::generation));
        loop {
            let Some(mut link) = self.idle.lock().get_mut(&key).and_then(Vec::pop) else {
                break;
            };
            if !link.closed_while_idle() {
                return Ok(link);
            }
        }
        open(caller, target, addr, tls, timeout).await
    }

    /// Keeps `link` for the next stream to the same peer (with the same TLS material).
    pub fn give_back(&self, addr: &str, tls: Option<&ReloadingTls>, link: Link) {
        let key = (addr.to_string(), tls.map_or(0, ReloadingTls::generation));
        let mut idle = self.idle.lock();
        idle.retain(|(a, generation), _| a != addr || *generation == key.1);
        let links = idle.entry(key).or_default();
        if links.len() < IDLE_PER_PEER {
            links.push(link);
        }
    }
}

/// Dials `addr`, sends the magic and the hello, and reads the peer's answer.
async fn open(
    caller: &Caller,
    target: NodeId,
    addr: &str,
    tls: Option<&ReloadingTls>,
    timeout: Duration,
) -> Result<Link, OpenError> {
    let io = qastore_security::dial(addr, tls, timeout)
        .await
        .map_err(OpenError::Io)?;
    let (reader, mut writer) = tokio::io::split(io);
    let greet = async {
        writer.write_all(MAGIC).await?;
        let mut writer = FramedWrite::new(writer, codec());
        let hello = Frame::Hello {
            cluster: caller.cluster.clone(),
            from: caller.node_id,
            to: target,
        };
        writer.send(hello.encode()).await?;
        let mut reader = FramedRead::new(reader, codec());
        let answer = match reader.next().await {
            Some(frame) => Frame::decode(frame?)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection before answering its hello",
                ))
            }
        };
        Ok((answer, Link { reader, writer }))
    };
    match tokio::time::timeout(timeout, greet).await {
        Err(_) => Err(OpenError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{addr} did not answer the append stream's hello within {timeout:?}"),
        ))),
        Ok(Err(e)) => Err(OpenError::Io(e)),
        Ok(Ok((Frame::Welcome, link))) => Ok(link),
        Ok(Ok((Frame::Refused(status), _))) => Err(OpenError::Refused(status)),
        Ok(Ok((other, _))) => Err(OpenError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{addr} answered the append stream's hello with {other:?}"),
        ))),
    }
}

/// Sends the appends `requests` yields on `writer` (writing what is ready together, flushing
/// when it has to wait), then the end of the stream; gives the writer back when all was sent.
pub fn spawn_sender<S>(mut writer: LinkWriter, requests: S) -> JoinHandle<Option<LinkWriter>>
where
    S: Stream<Item = pb::AppendRequest> + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let mut frames = requests.map(|r| Ok::<_, io::Error>(Frame::Append(r).encode()));
        writer.send_all(&mut frames).await.ok()?;
        writer.send(Frame::End.encode()).await.ok()?;
        Some(writer)
    })
}

/// Aborts the sending task of a stream whose answers are no longer read.
pub struct SenderGuard(pub Option<JoinHandle<Option<LinkWriter>>>);

impl Drop for SenderGuard {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
