//! An HTTP/1.1 request to a node's HTTP port (metrics, health, JSON admin routes), plain or
//! over TLS, with no client library in the way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::KitError;

/// One HTTP/1.1 request without a body; returns the status code and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String), KitError> {
    request(addr, method, path, None)
}

/// The same over TLS with `tls` (a client config speaking HTTP/1.1).
pub fn https(
    addr: SocketAddr,
    method: &str,
    path: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(u16, String), KitError> {
    request(addr, method, path, Some(tls))
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(u16, String), KitError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let io = |e| KitError::io(format!("{method} {scheme}://{addr}{path}"), e);
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let mut text = String::new();
    match tls {
        None => {
            s.write_all(head.as_bytes()).map_err(io)?;
            s.read_to_string(&mut text).map_err(io)?;
        }
        Some(config) => {
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let mut conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| KitError::Cluster(format!("TLS to {addr}: {e}")))?;
            let mut stream = rustls::Stream::new(&mut conn, &mut s);
            stream.write_all(head.as_bytes()).map_err(io)?;
            let mut bytes = Vec::new();
            // A server that closes without close_notify ends the read with an error once the
            // whole answer is in.
            if let Err(e) = stream.read_to_end(&mut bytes) {
                if bytes.is_empty() {
                    return Err(io(e));
                }
            }
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}
