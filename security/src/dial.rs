//! A plain TCP or mutual-TLS connection to another node, for the peer protocols that do not
//! go through gRPC (the append stream). The TLS side is the same as a gRPC channel's: this
//! node's certificate presented, the peer's checked against the CA bundle and the host dialled.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::tls::ReloadingTls;

/// A connection made by [`dial`].
pub enum Dialed {
    /// Plain TCP (a node without TLS).
    Plain(TcpStream),
    /// Mutual TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

/// The host part of `host:port` (an IPv6 address without its brackets).
fn host_of(addr: &str) -> io::Result<&str> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?}: not host:port"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    Ok(host.trim_start_matches('[').trim_end_matches(']'))
}

/// Connects to `addr` (`host:port`) within `timeout`, over TLS when `tls` is given, with
/// `TCP_NODELAY` set.
pub async fn dial(addr: &str, tls: Option<&ReloadingTls>, timeout: Duration) -> io::Result<Dialed> {
    let host = host_of(addr)?;
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = tls else {
            return Ok(Dialed::Plain(tcp));
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?}: {e}")))?;
        let connector = TlsConnector::from(tls.client_config());
        let stream = connector.connect(name, tcp).await?;
        Ok(Dialed::Tls(Box::new(stream)))
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {addr} took longer than {timeout:?}"),
        )),
    }
}

impl AsyncRead for Dialed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Dialed::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Dialed::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Dialed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Dialed::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Dialed::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Dialed::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Dialed::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Dialed::Plain(s) => s.is_write_vectored(),
            Dialed::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Dialed::Plain(s) => Pin::new(s).poll_flush(cx),
            Dialed::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Dialed::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Dialed::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_is_what_comes_before_the_port() {
        assert_eq!(host_of("node-1.example:7001").ok(), Some("node-1.example"));
        assert_eq!(host_of("127.0.0.1:7001").ok(), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:7001").ok(), Some("::1"));
        assert!(host_of("no-port").is_err());
        assert!(host_of("host:port").is_err());
    }
}
