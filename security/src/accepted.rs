//! A TLS connection a node accepted, with who is on the other end read once, at the handshake,
//! so no call has to parse a certificate again.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::inspect::{inspect_der, CertSummary};
use crate::limits::{ConnectionLimiter, ConnectionSlot};

/// Who is on the other end of an accepted connection. Every request that arrives on the
/// connection carries it in its extensions (tonic puts it there), where [`caller`] and
/// [`Peer::of`] find it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The caller's address, when the transport knows it.
    pub remote: Option<SocketAddr>,
    /// The certificate the caller presented, read at the handshake (`None` on a plain
    /// connection, or when the certificate names nobody this crate can read).
    pub certificate: Option<Arc<CertSummary>>,
}

impl Peer {
    /// The connection a request arrived on (`None` when it did not come through [`Accepted`]).
    pub fn of<B>(request: &tonic::codegen::http::Request<B>) -> Option<&Peer> {
        request.extensions().get::<Peer>()
    }
}

/// The client certificate of the connection a gRPC request arrived on (`None` on a plain
/// connection or without a certificate).
pub fn caller<T>(request: &tonic::Request<T>) -> Option<Arc<CertSummary>> {
    request.extensions().get::<Peer>()?.certificate.clone()
}

/// A TLS stream accepted by [`crate::tls::accept`], with its [`Peer`].
pub struct Accepted<IO> {
    stream: TlsStream<IO>,
    peer: Peer,
    /// The connection's place under its caller's limit, given back when it closes.
    _slot: Option<ConnectionSlot>,
}

impl<IO> Accepted<IO>
where
    IO: Connected<ConnectInfo = TcpConnectInfo>,
{
    /// Wraps a finished handshake, reading the client's certificate.
    pub(crate) fn new(stream: TlsStream<IO>) -> Self {
        Self::with_slot(stream, None)
    }

    /// Wraps a finished handshake holding `slot` under its caller's connection limit.
    pub(crate) fn with_slot(stream: TlsStream<IO>, slot: Option<ConnectionSlot>) -> Self {
        let (io, session) = stream.get_ref();
        let remote = io.connect_info().remote_addr();
        let certificate = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| inspect_der("the caller's certificate", leaf).ok())
            .map(Arc::new);
        Accepted {
            stream,
            peer: Peer {
                remote,
                certificate,
            },
            _slot: slot,
        }
    }

    /// Who is on the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Takes a place under `limiter` for this connection's caller; `None` (the connection
    /// should be closed) when the caller holds the most connections already.
    pub(crate) fn limited(mut self, limiter: &Arc<ConnectionLimiter>) -> Option<Self> {
        let caller =
            ConnectionLimiter::caller_of(self.peer.certificate.as_deref(), self.peer.remote);
        self._slot = Some(limiter.admit(caller)?);
        Some(self)
    }
}

impl<IO> Accepted<IO> {
    /// The TLS stream underneath (for the negotiated protocol and the like).
    pub fn tls(&self) -> &TlsStream<IO> {
        &self.stream
    }
}

impl<IO> Connected for Accepted<IO> {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Accepted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Accepted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
