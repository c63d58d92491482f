//! A plain HTTP/1.1 request to a node's HTTP port (metrics, health, JSON admin routes), with
//! no client library in the way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::KitError;

/// One HTTP/1.1 request without a body; returns the status code and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String), KitError> {
    let io = |e| KitError::io(format!("{method} http://{addr}{path}"), e);
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(io)?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(io)?;
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
