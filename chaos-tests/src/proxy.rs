//! The fault proxy: one small TCP proxy per directed peer link (node A dialing node B), owned by
//! the harness. A link passes bytes, delays them, or blackholes them (connections stay open
//! and every byte is dropped, so the sender learns nothing but silence); cutting a link also
//! closes the connections it carries. Blackholing A->B but not B->A is a one-way partition.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;

/// What a link does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Bytes pass.
    Pass,
    /// Bytes are dropped.
    Blackhole,
}

#[derive(Debug, Default)]
struct Shared {
    state: AtomicU8,
    delay_ms: AtomicU64,
    /// Bumped to close every connection of the link.
    epoch: AtomicU64,
}

/// One directed link's proxy.
#[derive(Debug, Clone)]
pub struct LinkProxy {
    /// Where the dialing node connects.
    pub listen: SocketAddr,
    shared: Arc<Shared>,
}

impl LinkProxy {
    /// Starts a proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let epoch = s.epoch.load(Ordering::Acquire);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ri, wo, s.clone(), epoch) => {}
                        _ = pump(ro, wi, s.clone(), epoch) => {}
                    }
                });
            }
        });
        Ok(LinkProxy { listen, shared })
    }

    /// Sets what the link does from now on.
    pub fn set(&self, state: LinkState) {
        let v = match state {
            LinkState::Pass => PASS,
            LinkState::Blackhole => BLACKHOLE,
        };
        self.shared.state.store(v, Ordering::Release);
    }

    /// Delays every chunk of bytes by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Release);
    }

    /// Closes every connection the link carries now.
    pub fn cut(&self) {
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Back to passing bytes without delay.
    pub fn heal(&self) {
        self.set(LinkState::Pass);
        self.set_delay(Duration::ZERO);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    s: Arc<Shared>,
    epoch: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if s.epoch.load(Ordering::Acquire) != epoch {
                    return;
                }
                continue;
            }
        };
        if s.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        let delay = s.delay_ms.load(Ordering::Acquire);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if s.state.load(Ordering::Acquire) == BLACKHOLE {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_passes_blackholes_and_cuts() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 16];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let link = LinkProxy::start(target).await.unwrap();
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        let mut b = [0u8; 4];
        c.write_all(b"ping").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        link.set(LinkState::Blackhole);
        c.write_all(b"lost").await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(300), c.read(&mut b)).await;
        assert!(r.is_err(), "nothing comes back through a blackhole");
        link.heal();
        link.cut();
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut b)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "a cut closes the connection: {r:?}"
        );
    }
}
