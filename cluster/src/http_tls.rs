//! The HTTP port over TLS: an axum listener over the TLS acceptor, and who is calling, for
//! the routes that act on the node (they need an admin, as the same calls over gRPC do).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use futures::{Stream, StreamExt};
use qastore_security::tls::{
    accept, AcceptOptions, Accepted, ClientCerts, Peer, Protocol, ReloadingTls,
};
use tokio::net::{TcpListener, TcpStream};

type Incoming = Pin<Box<dyn Stream<Item = std::io::Result<Accepted<TcpStream>>> + Send>>;

/// TLS connections to the HTTP port. A client certificate is optional: anyone who trusts the
/// cluster's CA may read metrics and health; acting on the node takes an admin's certificate.
pub struct TlsListener {
    local: SocketAddr,
    incoming: Incoming,
}

impl TlsListener {
    /// Accepts TLS connections on `listener` with the node's `tls`.
    pub fn new(
        listener: TcpListener,
        tls: Arc<ReloadingTls>,
        handshake_timeout: Duration,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let options = AcceptOptions {
            handshake_timeout,
            client_certs: ClientCerts::Optional,
            limiter: None,
            protocol: Protocol::Http1,
        };
        let tcp = tokio_stream::wrappers::TcpListenerStream::new(listener);
        Ok(TlsListener {
            local,
            incoming: Box::pin(accept(tcp, tls, options)),
        })
    }
}

impl Listener for TlsListener {
    type Io = Accepted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let addr = conn.peer().remote.unwrap_or(self.local);
                    return (conn, addr);
                }
                Some(Err(e)) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // The acceptor ended (the node is stopping): accept nothing more.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Who is on the other end of an HTTP connection (in each request's extensions, as
/// `ConnectInfo<HttpCaller>`).
#[derive(Debug, Clone)]
pub struct HttpCaller(pub Peer);

impl Connected<IncomingStream<'_, TlsListener>> for HttpCaller {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        HttpCaller(stream.io().peer().clone())
    }
}
