//! The peer port's two protocols: gRPC for every peer call, and the append stream's own
//! framing ([`append_wire`](super::append_wire)) for replication. Each accepted connection is
//! told apart by its first 24 bytes: HTTP/2's preface goes on to the gRPC server with those
//! bytes put back; the append stream's magic is served here.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use parking_lot::Mutex;
use qastore_proto::v1 as pb;
use qastore_security::tls::Accepted;
use qastore_security::CertSummary;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::Status;

use super::append_wire::{codec, Frame, H2_PREFACE, MAGIC};
use super::killable::KillableIo;
use super::server::{PeerGuard, PeerService};

/// A connection's client certificate, read at its TLS handshake (none on a plain one).
pub trait CallerCertificate {
    /// The certificate the caller presented.
    fn caller_certificate(&self) -> Option<Arc<CertSummary>>;
}

impl CallerCertificate for KillableIo {
    fn caller_certificate(&self) -> Option<Arc<CertSummary>> {
        None
    }
}

impl<IO: Connected<ConnectInfo = TcpConnectInfo>> CallerCertificate for Accepted<IO> {
    fn caller_certificate(&self) -> Option<Arc<CertSummary>> {
        self.peer().certificate.clone()
    }
}

/// A connection whose first bytes were read to tell its protocol, handing them back first.
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO: Connected> Connected for Prefixed<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Frames from a caller.
type Reader<IO> = FramedRead<ReadHalf<IO>, LengthDelimitedCodec>;
/// Frames to a caller.
type Writer<IO> = FramedWrite<WriteHalf<IO>, LengthDelimitedCodec>;

/// What serves the append streams that arrive on the peer port.
#[derive(Clone)]
pub struct AppendPort {
    service: PeerService,
    guard: PeerGuard,
    /// How long a caller has to send its first bytes and its hello.
    greeting_timeout: Duration,
}

impl AppendPort {
    /// Append streams served by `service`, callers admitted by `guard`.
    pub fn new(service: PeerService, guard: PeerGuard, greeting_timeout: Duration) -> Self {
        AppendPort {
            service,
            guard,
            greeting_timeout,
        }
    }

    /// The gRPC connections among `incoming`: each connection's first bytes are read in a task
    /// of its own; append streams are served there, anything else but HTTP/2 is closed.
    pub fn split<IO, S>(self, incoming: S) -> impl Stream<Item = io::Result<Prefixed<IO>>> + Send
    where
        IO: AsyncRead + AsyncWrite + CallerCertificate + Unpin + Send + 'static,
        S: Stream<Item = io::Result<IO>> + Send + Unpin + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut incoming = incoming;
            loop {
                let next = tokio::select! {
                    () = tx.closed() => break,
                    next = incoming.next() => next,
                };
                let mut io = match next {
                    None => break,
                    Some(Err(e)) => {
                        if tx.send(Err(e)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Some(Ok(io)) => io,
                };
                let (tx, port) = (tx.clone(), self.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 24];
                    let read =
                        tokio::time::timeout(port.greeting_timeout, io.read_exact(&mut first));
                    match read.await {
                        Ok(Ok(_)) if &first == H2_PREFACE => {
                            let prefixed = Prefixed {
                                prefix: Bytes::copy_from_slice(&first),
                                io,
                            };
                            let _ = tx.send(Ok(prefixed)).await;
                        }
                        Ok(Ok(_)) if &first == MAGIC => port.serve(io).await,
                        Ok(Ok(_)) => tracing::debug!(
                            "a peer connection speaking neither gRPC nor the append stream; closed"
                        ),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "a peer connection closed before its first bytes")
                        }
                        Err(_) => tracing::debug!("a peer connection sent nothing in time; closed"),
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// Serves the append streams of one connection, one after the other.
    async fn serve<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + CallerCertificate + Unpin + Send + 'static,
    {
        let certificate = io.caller_certificate();
        let (reader, writer) = tokio::io::split(io);
        let mut reader = FramedRead::new(reader, codec());
        let mut writer = FramedWrite::new(writer, codec());
        let hello = tokio::time::timeout(self.greeting_timeout, reader.next()).await;
        let admitted = match hello {
            Ok(Some(Ok(bytes))) => match Frame::decode(bytes) {
                Ok(Frame::Hello { cluster, from, to }) => self.guard.admit(
                    Some(&cluster),
                    Some(from),
                    Some(&to.to_string()),
                    certificate.as_deref(),
                ),
                Ok(_) => Err(Status::invalid_argument(
                    "an append stream must begin with its hello",
                )),
                Err(e) => Err(Status::invalid_argument(e.to_string())),
            },
            _ => return,
        };
        let answer = match &admitted {
            Ok(()) => Frame::Welcome,
            Err(status) => Frame::Refused(status.clone()),
        };
        if writer.send(answer.encode()).await.is_err() {
            return;
        }
        if let Err(status) = admitted {
            tracing::debug!(%status, "append stream refused");
            return;
        }
        loop {
            let first = match reader.next().await.map(|r| r.and_then(Frame::decode)) {
                Some(Ok(Frame::Append(request))) => request,
                Some(Ok(Frame::End)) => {
                    let done = Frame::Done {
                        reusable: true,
                        error: None,
                    };
                    if writer.send(done.encode()).await.is_err() {
                        return;
                    }
                    continue;
                }
                None => return,
                Some(Ok(other)) => {
                    tracing::debug!(frame = ?other, "append stream: unexpected frame; closed");
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "append stream closed");
                    return;
                }
            };
            match self.serve_stream(first, reader, &mut writer).await {
                Some(back) => reader = back,
                None => return,
            }
        }
    }

    /// Serves one stream that began with `first`; gives the reader back when the stream ended
    /// where the caller ended it, so the connection can take another.
    async fn serve_stream<IO>(
        &self,
        first: pb::AppendRequest,
        reader: Reader<IO>,
        writer: &mut Writer<IO>,
    ) -> Option<Reader<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let returned: Arc<Mutex<Option<Reader<IO>>>> = Arc::default();
        let slot = returned.clone();
        let rest = futures::stream::unfold(Some(reader), move |state| {
            let slot = slot.clone();
            async move {
                let mut reader = state?;
                match reader.next().await.map(|r| r.and_then(Frame::decode)) {
                    Some(Ok(Frame::Append(request))) => Some((Ok(request), Some(reader))),
                    Some(Ok(Frame::End)) => {
                        *slot.lock() = Some(reader);
                        None
                    }
                    Some(Ok(other)) => Some((
                        Err(Status::invalid_argument(format!(
                            "append stream: expected an append or its end, got {other:?}"
                        ))),
                        None,
                    )),
                    Some(Err(e)) => Some((Err(Status::invalid_argument(e.to_string())), None)),
                    // The caller went away: the answers still owed go nowhere.
                    None => None,
                }
            }
        });
        let inbound = futures::stream::once(futures::future::ready(Ok(first))).chain(rest);
        let mut answers = self.service.append_stream(inbound);
        loop {
            // Send what is ready in one write; flush only when waiting for more.
            let next = match answers.next().now_or_never() {
                Some(next) => next,
                None => {
                    SinkExt::<Bytes>::flush(writer).await.ok()?;
                    answers.next().await
                }
            };
            match next {
                Some(Ok(answer)) => writer.feed(Frame::Answer(answer).encode()).await.ok()?,
                Some(Err(status)) => {
                    let done = Frame::Done {
                        reusable: false,
                        error: Some(status),
                    };
                    let _ = writer.send(done.encode()).await;
                    return None;
                }
                None => break,
            }
        }
        let back = returned.lock().take();
        let done = Frame::Done {
            reusable: back.is_some(),
            error: None,
        };
        writer.send(done.encode()).await.ok()?;
        back
    }
}
