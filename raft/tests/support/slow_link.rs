//! A slow network link for tests: a loopback TCP proxy that passes at most a given number of
//! bytes a second each way on each connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A proxy to one address; stops when dropped.
pub struct SlowLink {
    /// The address to dial instead of the target's.
    pub addr: String,
    task: JoinHandle<()>,
}

impl SlowLink {
    /// A link to `to` carrying `bytes_per_sec` each way.
    pub async fn start(to: String, bytes_per_sec: u64) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let to = to.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&to).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (a, b) = (Arc::new(inbound), Arc::new(outbound));
                    // Either way ending closes both.
                    tokio::select! {
                        () = pump(&a, &b, bytes_per_sec) => {}
                        () = pump(&b, &a, bytes_per_sec) => {}
                    }
                });
            }
        });
        SlowLink { addr, task }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, pausing so that no more than `rate` bytes a second pass (idle time
/// earns no burst).
async fn pump(from: &TcpStream, to: &TcpStream, rate: u64) {
    let mut buf = vec![0u8; 16 << 10];
    let mut next = Instant::now();
    loop {
        if from.readable().await.is_err() {
            return;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        let mut sent = 0;
        while sent < n {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
        next = next.max(Instant::now()) + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(next).await;
    }
}
