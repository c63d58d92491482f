//! What a log entry carries ([`Request`]): an application's command, as opaque bytes.
//!
//! A request is kept as the bytes the application encoded from the moment the leader takes it:
//! the write-ahead log stores those bytes, the network ships them, and only the application
//! decodes them (checking them) to apply. Nothing re-encodes a command on its way.

use std::fmt;

use bytes::Bytes;

/// The application data of a log entry: an encoded command.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    bytes: Bytes,
}

impl Request {
    /// A request of an encoded command, or of bytes received or read back (the application
    /// checks them when it decodes them).
    pub fn from_bytes(bytes: Bytes) -> Self {
        Request { bytes }
    }

    /// The encoded command.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.bytes.len())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
