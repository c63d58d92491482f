//! What a replicated log entry asks the exchange to do ([`Command`]) and what applying it
//! answers ([`Response`]).
//!
//! Commands travel and are stored as their archived bytes (in the log, and inside dedup
//! records): the fields and their order are the format, so they must not change.

use rkyv::{Archive, Deserialize, Serialize};

use crate::apply::Outcome;
use crate::consumer::ConsumerState;
use crate::feed::Position;
use crate::record::{encode, inspect, DecodeError, Record};
use crate::write::{ArchivedEncodedWrite, EncodedWrite};

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

/// A batch of exchange records from one client request, in the format writes were logged
/// in before their records were archived once ([`EncodedWrite`]): entries already in logs and
/// checkpoints keep applying as they were logged.
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

/// The hash identifying a batch of records in the earlier write format ([`WriteCommand`]):
/// each record archived on its own. Writes now hash their one archive ([`EncodedWrite`]).
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

impl From<StreamKind> for crate::keys::Stream {
    fn from(s: StreamKind) -> Self {
        match s {
            StreamKind::Ticks => crate::keys::Stream::Ticks,
            StreamKind::Trades => crate::keys::Stream::Trades,
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
    /// Create a durable consumer (see [`crate::consumer`]); one that exists is left as it is.
    CreateConsumer {
        /// Its name.
        name: String,
        /// Its first cursor: a stream for it starts right after this position.
        cursor: Position,
        /// When the leader proposed it (epoch nanoseconds).
        created_at_ns: i64,
    },
    /// Acknowledge every event of a durable consumer up to and including `position` (its
    /// cursor only moves forward).
    AckConsumer {
        /// The consumer.
        name: String,
        /// The last acknowledged position.
        position: Position,
    },
    /// Delete a durable consumer.
    DeleteConsumer {
        /// The consumer.
        name: String,
    },
    /// Give a client of the cluster these roles, in place of its certificate's (see
    /// [`crate::access`]). Boxed, like [`SystemCommand::Audit`]: a command's archive is as
    /// large as its largest variant, which must stay within the stored write command's.
    SetAccess(Box<AccessChange>),
    /// Drop a client's entry from the access table: its certificate's roles apply again.
    RemoveAccess {
        /// The client's name.
        client: String,
    },
    /// Record an operator's action in the audit trail (see [`crate::audit`]).
    Audit(Box<crate::audit::AuditEntry>),
}

/// What [`SystemCommand::SetAccess`] sets.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct AccessChange {
    /// The client's name (as its certificate names it).
    pub client: String,
    /// Its roles; none locks it out.
    pub roles: Vec<String>,
    /// The users whose data it may read (empty: any).
    pub users: Vec<String>,
    /// The instruments whose data it may read: ids, or prefixes ending in `*` (empty: any).
    pub instruments: Vec<String>,
    /// The administrator who set them.
    pub set_by: String,
    /// When (epoch nanoseconds, the proposing leader's clock).
    pub set_at_ns: i64,
}

/// What an entry asks the state machine to do.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub enum Command {
    /// Apply a client's batch of records.
    Write(WriteCommand),
    /// A system change.
    System(SystemCommand),
    /// Apply a client's batch of records, archived once ([`crate::write`]): how every write
    /// is logged now.
    EncodedWrite(EncodedWrite),
    /// Several clients' writes proposed together (the leader coalesces writes that arrive
    /// while earlier ones are on their way): applied one after another in one engine batch,
    /// each with its own request id, dedup record and answer, their records numbered on from
    /// one write to the next. The leader groups only writes acknowledged by a quorum.
    WriteGroup(Vec<EncodedWrite>),
}

impl Command {
    /// The command's archived bytes: what a log entry stores and the state machine decodes.
    pub fn to_bytes(&self) -> bytes::Bytes {
        encode(self)
    }

    /// Whether a log entry's command is a client's write rather than a system command, read
    /// from its archive without decoding the records; `false` for bytes that are not a
    /// command.
    pub fn is_client_write(bytes: &[u8]) -> bool {
        inspect::<Command, _>(bytes, |archived| {
            matches!(
                archived,
                ArchivedCommand::EncodedWrite(_)
                    | ArchivedCommand::Write(_)
                    | ArchivedCommand::WriteGroup(_)
            )
        })
        .unwrap_or(false)
    }

    /// Checks and decodes a log entry's command. A write archived once keeps its records'
    /// archive as bytes, copied whole rather than deserialized byte by byte: the records are
    /// checked and decoded when the write is applied.
    pub fn from_entry(bytes: &[u8]) -> Result<Command, DecodeError> {
        inspect::<Command, _>(bytes, |archived| match archived {
            ArchivedCommand::EncodedWrite(w) => Ok(Command::EncodedWrite(unarchive_write(w))),
            ArchivedCommand::WriteGroup(ws) => Ok(Command::WriteGroup(
                ws.iter().map(unarchive_write).collect(),
            )),
            other => rkyv::deserialize::<Command, rkyv::rancor::Error>(other)
                .map_err(|e| DecodeError(e.to_string())),
        })?
    }
}

/// A checked archived write, its records' archive copied whole.
fn unarchive_write(w: &ArchivedEncodedWrite) -> EncodedWrite {
    EncodedWrite {
        client_id: w.client_id.as_str().to_owned(),
        request_id: w.request_id.to_native(),
        commit_ns: w.commit_ns.to_native(),
        ack: match w.ack {
            ArchivedAck::Quorum => Ack::Quorum,
            ArchivedAck::All => Ack::All,
        },
        records: w.records.as_slice().to_vec(),
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
        /// Durable consumers expired: retention passed events they had not acknowledged.
        consumers_expired: usize,
    },
    /// The calendar or the cluster settings were replaced.
    SettingsChanged,
    /// A hash mark was applied; the state hash as of it is being computed.
    HashMarked,
    /// A durable consumer as it stands after a create or an ack.
    Consumer(ConsumerState),
    /// A durable consumer deletion ran.
    ConsumerDeleted {
        /// Whether the consumer existed (it no longer does).
        existed: bool,
    },
    /// The durable consumer named does not exist; nothing changed.
    UnknownConsumer {
        /// The name asked for.
        name: String,
    },
    /// The command could not be carried out; nothing changed. Deterministic: every node
    /// refuses it alike.
    Refused {
        /// Why.
        reason: String,
    },
    /// The answers to a [`Command::WriteGroup`], one per write, in order.
    Group(Vec<Response>),
    /// The access table changed.
    AccessChanged {
        /// Whether the client's entry existed before (for a removal) or exists now (a set).
        existed: bool,
        /// The log index of the change.
        index: u64,
    },
    /// An audit entry was recorded.
    Audited {
        /// Its log index.
        index: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{decode, samples};

    #[test]
    fn a_client_write_is_told_from_a_system_command_without_decoding_it() {
        let write = crate::write::EncodedWrite::new("c1", 7, Ack::Quorum, samples::records())
            .unwrap()
            .into_entry();
        assert!(Command::is_client_write(&write));
        // At an odd address too, where the archive is read from a copy.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&write);
        assert!(Command::is_client_write(&shifted[1..]));
        let system = Command::System(SystemCommand::HashMark).to_bytes();
        assert!(!Command::is_client_write(&system));
        assert!(!Command::is_client_write(b"not a command"));
    }

    #[test]
    fn the_payload_hash_follows_the_records() {
        let a = samples::records();
        let mut b = a.clone();
        b.swap(0, 1);
        assert_eq!(payload_hash(&a), payload_hash(&a.clone()));
        assert_ne!(payload_hash(&a), payload_hash(&b));
    }

    #[test]
    fn a_command_round_trips_through_its_bytes_and_truncation_is_caught() {
        let cmd = Command::Write(WriteCommand::new("c1", 7, Ack::All, samples::records()));
        let bytes = cmd.to_bytes();
        assert_eq!(decode::<Command>(&bytes).unwrap(), cmd);
        assert!(decode::<Command>(&bytes.slice(..bytes.len() - 8)).is_err());
    }

    #[test]
    fn an_entry_decodes_alike_by_either_path() {
        let write = Command::Write(WriteCommand::new("c1", 7, Ack::All, samples::records()));
        let encoded = Command::EncodedWrite(
            EncodedWrite::new("c1", 8, Ack::Quorum, samples::records()).unwrap(),
        );
        let system = Command::System(SystemCommand::HashMark);
        let create = Command::System(SystemCommand::CreateConsumer {
            name: "risk-engine".into(),
            cursor: Position::new(41, 3),
            created_at_ns: -7,
        });
        let ack = Command::System(SystemCommand::AckConsumer {
            name: "r".into(),
            position: Position::end_of(9),
        });
        let delete = Command::System(SystemCommand::DeleteConsumer { name: "r".into() });
        for cmd in [write, encoded, system, create, ack, delete] {
            let bytes = cmd.to_bytes();
            assert_eq!(Command::from_entry(&bytes).unwrap(), cmd);
            assert_eq!(decode::<Command>(&bytes).unwrap(), cmd);
            assert!(Command::from_entry(&bytes[..bytes.len() - 8]).is_err());
        }
    }

    /// Entries already in logs were archived in this exact layout: it must keep decoding.
    #[test]
    fn commands_in_the_stored_format_decode() {
        let write = Command::Write(WriteCommand {
            client_id: "c1".into(),
            request_id: 7,
            payload_hash: 0x0102_0304_0506_0708,
            ack: Ack::All,
            records: Vec::new(),
        });
        let system = Command::System(SystemCommand::ConvertDay {
            stream: StreamKind::Trades,
            trading_day: 20241202,
        });
        let encoded = Command::EncodedWrite(EncodedWrite {
            client_id: "c1".into(),
            request_id: 7,
            commit_ns: 0x0102_0304_0506_0708,
            ack: Ack::All,
            records: vec![0xaa, 0xbb, 0xcc],
        });
        for (cmd, stored) in [
            (write, WRITE_BYTES),
            (system, SYSTEM_BYTES),
            (encoded, ENCODED_WRITE_BYTES),
        ] {
            let bytes = encode(&cmd);
            assert_eq!(hex(&bytes), stored, "{cmd:?} no longer archives the same");
            assert_eq!(decode::<Command>(&unhex(stored)).unwrap(), cmd);
        }
    }

    /// `Command::Write`: the tag, "c1" stored inline, request id 7, the payload hash, `All`,
    /// an empty record list.
    const WRITE_BYTES: &str = concat!(
        "0000000000000000",
        "6331ffffffffffff",
        "0700000000000000",
        "0807060504030201",
        "01000000",
        "dcffffff00000000",
        "00000000",
    );
    /// `Command::EncodedWrite`: the records' bytes and padding, the tag, "c1" stored inline,
    /// request id 7, the commit time, `All`, the byte vector (offset, length 3).
    const ENCODED_WRITE_BYTES: &str = concat!(
        "aabbcc0000000000",
        "0200000000000000",
        "6331ffffffffffff",
        "0700000000000000",
        "0807060504030201",
        "01000000",
        "d4ffffff03000000",
        "00000000",
    );
    /// `Command::System(ConvertDay)`: the tags, `Trades`, the day 20241202, padding.
    const SYSTEM_BYTES: &str = concat!(
        "0100000000000000",
        "0001000032db3401",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
    );

    /// The archived command is as large as its largest variant: the system commands added
    /// later must never make it larger than the client write of the first format, or entries
    /// already stored would no longer be found at their archive's end.
    #[test]
    fn system_commands_fit_within_the_stored_write_command() {
        assert!(
            std::mem::size_of::<ArchivedSystemCommand>()
                <= std::mem::size_of::<ArchivedWriteCommand>()
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
