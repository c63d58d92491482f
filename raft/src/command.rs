//! What a log entry carries ([`Request`]) and what applying it answers ([`Response`]).
//!
//! The commands and answers are the exchange's (`qastore-exchange`'s `command` module); this module
//! wraps a command as the application data of a log entry. A request is kept as the archived
//! bytes of a [`Command`] from the moment the leader builds it: the write-ahead log stores
//! those bytes, the network ships them, and only the state machine decodes them (checking the
//! archive) to apply. Nothing re-encodes a batch on its way.

use std::fmt;

use bytes::Bytes;
use qastore_exchange::record::{decode, encode, DecodeError};

pub use qastore_exchange::{Ack, Command, Response, StreamKind, SystemCommand, WriteCommand};

/// The application data of a log entry: an archived [`Command`].
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    bytes: Bytes,
}

impl Request {
    /// The request carrying `command`.
    pub fn new(command: &Command) -> Self {
        Request {
            bytes: encode(command),
        }
    }

    /// A request from archived bytes received or read back (checked when decoded).
    pub fn from_bytes(bytes: Bytes) -> Self {
        Request { bytes }
    }

    /// The archived bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Checks and decodes the command.
    pub fn command(&self) -> Result<Command, DecodeError> {
        decode(&self.bytes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_exchange::record::samples;

    #[test]
    fn a_request_round_trips_and_truncation_is_caught() {
        let cmd = Command::Write(WriteCommand::new("c1", 7, Ack::All, samples::records()));
        let req = Request::new(&cmd);
        assert_eq!(req.command().unwrap(), cmd);
        let cut = req.bytes().slice(..req.bytes().len() - 8);
        assert!(Request::from_bytes(cut).command().is_err());
    }
}
