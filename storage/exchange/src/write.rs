//! A client's write as it enters the log: every check that needs no stored state runs once,
//! in [`EncodedWrite::new`], and the records are archived once. The archive is what the dedup
//! hash covers and what the log entry carries; apply checks and decodes it, nothing encodes
//! the records again.
//!
//! Writes logged before this format ([`crate::WriteCommand`], hashed record by record) are
//! still applied as they were logged. A retry of such a write that arrives in the new format
//! hashes differently, so when the hashes differ the dedup check also compares the older hash
//! of the same records before calling the request id reused.

use bytes::Bytes;
use rkyv::{Archive, Deserialize, Serialize};

use crate::apply::MAX_BATCH_RECORDS;
use crate::command::{Ack, Command};
use crate::record::{decode, encode, validate_batch, DecodeError, Record, RecordError};

/// The longest client id, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// Why a client's write was refused before it was proposed. Its text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWrite {
    /// A field of the request is out of its range.
    #[error("field {field}: {reason}")]
    Field {
        /// The request's field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A record fails its checks; the whole batch is refused.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A client's batch of records, checked and archived: what a write's log entry carries.
///
/// The archived form is a log format: the fields and their order must not change.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct EncodedWrite {
    /// Who sent it (with `request_id`, what makes a retry recognisable).
    pub client_id: String,
    /// The client's number for this request; a retry carries the same.
    pub request_id: u64,
    /// When the leader proposed it (epoch nanoseconds; 0 until [`EncodedWrite::stamped`]):
    /// the commit time its events carry to subscribers, the same on every node.
    pub commit_ns: i64,
    /// How many nodes must hold it before the client is answered.
    pub ack: Ack,
    /// The archived `Vec<Record>`, checked when it is applied.
    pub records: Vec<u8>,
}

impl EncodedWrite {
    /// Checks a client's write without reading stored state (client id, request id, batch
    /// size, every record) and archives its records once.
    pub fn new(
        client_id: &str,
        request_id: u64,
        ack: Ack,
        records: Vec<Record>,
    ) -> Result<EncodedWrite, InvalidWrite> {
        check_client_id(client_id)?;
        if request_id == 0 {
            return Err(field("request_id", "must not be 0".into()));
        }
        if records.is_empty() {
            return Err(field("records", "the batch is empty".into()));
        }
        if records.len() > MAX_BATCH_RECORDS {
            return Err(field(
                "records",
                format!(
                    "{} records exceed the limit of {MAX_BATCH_RECORDS} per batch",
                    records.len()
                ),
            ));
        }
        validate_batch(&records)?;
        let archived = encode(&records);
        Ok(EncodedWrite {
            client_id: client_id.to_owned(),
            request_id,
            commit_ns: 0,
            ack,
            records: archived.to_vec(),
        })
    }

    /// The write with its commit time set: the leader stamps it as it proposes the entry.
    pub fn stamped(mut self, commit_ns: i64) -> EncodedWrite {
        self.commit_ns = commit_ns;
        self
    }

    /// The hash a retry is recognised by: of the records' archive, so a retry must carry the
    /// same payload. Computed where it is needed rather than logged.
    pub fn payload_hash(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.records)
    }

    /// The bytes of the log entry carrying this write.
    pub fn into_entry(self) -> Bytes {
        encode(&Command::EncodedWrite(self))
    }

    /// Checks and decodes the records.
    pub fn decode_records(&self) -> Result<Vec<Record>, DecodeError> {
        decode(&self.records)
    }
}

fn field(field: &'static str, reason: String) -> InvalidWrite {
    InvalidWrite::Field { field, reason }
}

fn check_client_id(id: &str) -> Result<(), InvalidWrite> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES || id.chars().any(char::is_control) {
        return Err(field(
            "client_id",
            format!("must be 1 to {MAX_CLIENT_ID_BYTES} bytes without control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::samples;

    #[test]
    fn a_write_carries_the_hash_of_the_bytes_it_stores() {
        let records = samples::records();
        let w = EncodedWrite::new("gw-1", 7, Ack::Quorum, records.clone()).unwrap();
        assert_eq!(w.payload_hash(), xxhash_rust::xxh3::xxh3_64(&w.records));
        assert_eq!(w.decode_records().unwrap(), records);
        let again = EncodedWrite::new("gw-1", 7, Ack::Quorum, records.clone()).unwrap();
        assert_eq!(
            again.payload_hash(),
            w.payload_hash(),
            "a retry hashes alike"
        );
        let mut swapped = records.clone();
        swapped.swap(0, 1);
        let other = EncodedWrite::new("gw-1", 7, Ack::Quorum, swapped).unwrap();
        assert_ne!(other.payload_hash(), w.payload_hash());
    }

    #[test]
    fn the_entry_decodes_to_the_same_write() {
        let w = EncodedWrite::new("gw-1", 9, Ack::All, samples::records()).unwrap();
        let entry = w.clone().into_entry();
        assert_eq!(decode::<Command>(&entry).unwrap(), Command::EncodedWrite(w));
    }

    #[test]
    fn each_stateless_check_names_its_field() {
        let records = samples::records();
        let refused = |client: &str, request: u64, records: &[Record]| {
            EncodedWrite::new(client, request, Ack::Quorum, records.to_vec())
                .unwrap_err()
                .to_string()
        };
        assert!(refused("", 1, &records).starts_with("field client_id:"));
        assert!(refused(&"x".repeat(65), 1, &records).starts_with("field client_id:"));
        assert!(refused("a\nb", 1, &records).starts_with("field client_id:"));
        assert_eq!(refused("c", 0, &records), "field request_id: must not be 0");
        assert_eq!(refused("c", 1, &[]), "field records: the batch is empty");
        let many = vec![records[0].clone(); MAX_BATCH_RECORDS + 1];
        assert!(refused("c", 1, &many).contains("exceed the limit"));
        let mut bad = records.clone();
        if let Record::Tick(t) = bad
            .iter_mut()
            .find(|r| matches!(r, Record::Tick(_)))
            .unwrap()
        {
            t.instrument_id.clear();
        }
        assert!(refused("c", 1, &bad).contains("instrument_id"));
        assert!(EncodedWrite::new(&"x".repeat(64), 1, Ack::Quorum, records).is_ok());
    }
}
