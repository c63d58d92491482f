//! What a log entry carries ([`Request`]) and what applying it answers ([`Response`]).
//!
//! A request is kept as the archived bytes of a [`Command`] from the moment the leader builds it:
//! the write-ahead log stores those bytes, the network ships them, and only the state machine
//! decodes them (checking the archive) to apply. Nothing re-encodes a batch on its way.

use std::fmt;

use bytes::Bytes;
use qastore_exchange::apply::Outcome;
use qastore_exchange::record::{decode, encode, DecodeError, Record};
use rkyv::{Archive, Deserialize, Serialize};

/// How many nodes must hold a write before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug))]
pub enum Ack {
    /// A quorum of voters (the entry is committed): the default.
    Quorum,
    /// Every voter. If one cannot within the deadline the answer says so (the write is committed
    /// anyway).
    All,
}

/// A batch of exchange records from one client request.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct WriteCommand {
    /// Who sent it (with `request_id`, what makes a retry recognisable).
    pub client_id: String,
    /// The client's number for this request; a retry carries the same.
    pub request_id: u64,
    /// The hash of the records as sent (a retry must carry the same payload).
    pub payload_hash: u64,
    /// How many nodes must hold it before the client is answered.
    pub ack: Ack,
    /// The records, already validated by the leader.
    pub records: Vec<Record>,
}

impl WriteCommand {
    /// A write of `records`, with its payload hash computed from them.
    pub fn new(
        client_id: impl Into<String>,
        request_id: u64,
        ack: Ack,
        records: Vec<Record>,
    ) -> Self {
        let payload_hash = payload_hash(&records);
        WriteCommand {
            client_id: client_id.into(),
            request_id,
            payload_hash,
            ack,
            records,
        }
    }
}

/// The hash identifying a batch of records (of their archived form, which is deterministic).
pub fn payload_hash(records: &[Record]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for r in records {
        let bytes = encode(r);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    h.digest()
}

/// Which record stream a conversion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug))]
pub enum StreamKind {
    /// Market ticks.
    Ticks,
    /// Executed trades.
    Trades,
}

impl From<StreamKind> for qastore_exchange::keys::Stream {
    fn from(s: StreamKind) -> Self {
        match s {
            StreamKind::Ticks => qastore_exchange::keys::Stream::Ticks,
            StreamKind::Trades => qastore_exchange::keys::Stream::Trades,
        }
    }
}

/// A change every node makes at the same point of the log.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum SystemCommand {
    /// Move a closed trading day of one stream to Parquet files.
    ConvertDay {
        /// Ticks or trades.
        stream: StreamKind,
        /// The trading day, `YYYYMMDD`.
        trading_day: u32,
    },
    /// Drop old partitions and old journal entries.
    Retain {
        /// Drop Parquet partitions of trading days before this one.
        drop_days_before: Option<u32>,
        /// Drop journal entries of log indexes before this one.
        drop_journal_before: Option<u64>,
    },
    /// Replace the trading calendar (TOML, in the format of the built-in one).
    SetCalendar {
        /// The calendar file's text.
        toml: String,
    },
    /// Replace the cluster-wide settings (TOML, see [`crate::ClusterConfig`]).
    SetClusterSettings {
        /// The settings file's text.
        toml: String,
    },
    /// Changes nothing: every node hashes its state as of this entry, so replicas can be
    /// compared at one exact index while writes go on.
    HashMark,
}

/// What an entry asks the state machine to do.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub enum Command {
    /// Apply a client's batch of records.
    Write(WriteCommand),
    /// A system change.
    System(SystemCommand),
}

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

/// What applying an entry answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A blank or membership entry: nothing to report.
    Nothing,
    /// The write was applied now.
    Written {
        /// One outcome per record.
        outcomes: Vec<Outcome>,
    },
    /// The write had been applied before (a retry): its original answer, nothing changed.
    Duplicate {
        /// Where it was first applied.
        original_index: u64,
        /// The outcomes it got then.
        outcomes: Vec<Outcome>,
    },
    /// The request id was used before with another payload: nothing changed.
    RequestIdReused {
        /// Where the first request with this id was applied.
        original_index: u64,
    },
    /// A trading day was converted to Parquet.
    Converted {
        /// Partitions written.
        partitions: usize,
        /// Rows moved.
        rows: u64,
        /// Bytes of Parquet written.
        bytes: u64,
    },
    /// Retention ran.
    Retained {
        /// Partitions removed.
        partitions_removed: usize,
        /// Journal entries removed.
        journal_entries_removed: u64,
    },
    /// The calendar or the cluster settings were replaced.
    SettingsChanged,
    /// A hash mark was applied; the state hash as of it is being computed.
    HashMarked,
    /// The command could not be carried out; nothing changed. Deterministic: every node
    /// refuses it alike.
    Refused {
        /// Why.
        reason: String,
    },
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

    #[test]
    fn the_payload_hash_follows_the_records() {
        let a = samples::records();
        let mut b = a.clone();
        b.swap(0, 1);
        assert_eq!(payload_hash(&a), payload_hash(&a.clone()));
        assert_ne!(payload_hash(&a), payload_hash(&b));
    }
}
