//! Connections that close when the node stops.
//!
//! A graceful server shutdown waits for open streams to end, and a peer's replication stream
//! never does. A stopped node must drop its connections at once, or peers keep talking to a
//! node that is gone (in one process, even after a new node took its address). Every accepted
//! connection is wrapped so that it fails its reads and writes as soon as the stop signal is
//! raised.
//!
//! A connection may also carry a hook run when it closes (unless the node is stopping): a
//! follower uses it to notice that its leader's connection broke.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tonic::transport::server::{Connected, TcpConnectInfo};

type Stopped = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What to run when a connection closes.
pub type OnClose = Box<dyn FnOnce() + Send>;

/// An accepted connection that dies when the node stops.
pub struct KillableIo {
    inner: TcpStream,
    stopped: Stopped,
    dead: bool,
    on_close: Option<OnClose>,
}

impl KillableIo {
    /// Wraps `inner`; it fails once `stop` turns true.
    pub fn new(inner: TcpStream, mut stop: watch::Receiver<bool>) -> Self {
        KillableIo {
            inner,
            stopped: Box::pin(async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
            dead: false,
            on_close: None,
        }
    }

    /// Runs `hook` when the connection is closed, unless the node is stopping.
    pub fn on_close(mut self, hook: OnClose) -> Self {
        self.on_close = Some(hook);
        self
    }

    /// Whether the node stopped (registering to be woken when it does).
    fn is_dead(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.dead && self.stopped.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        self.dead
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the node stopped")
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_dead(cx) {
            return Poll::Ready(Err(gone()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_dead(cx) {
            return Poll::Ready(Err(gone()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_dead(cx) {
            return Poll::Ready(Err(gone()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_dead(cx) {
            return Poll::Ready(Err(gone()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Drop for KillableIo {
    fn drop(&mut self) {
        if let Some(hook) = self.on_close.take() {
            if !self.dead {
                hook();
            }
        }
    }
}

impl Connected for KillableIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
