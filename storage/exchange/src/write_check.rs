//! The checks a client's write passes before it is proposed ([`WriteCommand::validated`]):
//! stateless, so the leader refuses a bad write before it reaches the log, naming the field.

use crate::apply::MAX_BATCH_RECORDS;
use crate::command::{Ack, WriteCommand};
use crate::record::{validate_batch, Record, RecordError};

/// Why a write was refused before the log; each names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWrite {
    /// The client id is empty, too long or holds control characters.
    #[error("field client_id: must be 1 to 64 bytes without control characters")]
    ClientId,
    /// The batch holds no record.
    #[error("field records: the batch is empty")]
    Empty,
    /// The batch holds more records than one entry may.
    #[error("field records: {count} records exceed the limit of {MAX_BATCH_RECORDS} per batch")]
    TooManyRecords {
        /// How many it holds.
        count: usize,
    },
    /// A record is invalid: the first one found refuses the whole batch.
    #[error(transparent)]
    Record(#[from] RecordError),
}

fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && !id.chars().any(char::is_control)
}

impl WriteCommand {
    /// A write of `records` (see [`WriteCommand::new`]) once the client id, the batch size and
    /// every record pass their checks.
    pub fn validated(
        client_id: impl Into<String>,
        request_id: u64,
        ack: Ack,
        records: Vec<Record>,
    ) -> Result<WriteCommand, InvalidWrite> {
        let client_id = client_id.into();
        if !valid_client_id(&client_id) {
            return Err(InvalidWrite::ClientId);
        }
        if records.is_empty() {
            return Err(InvalidWrite::Empty);
        }
        if records.len() > MAX_BATCH_RECORDS {
            return Err(InvalidWrite::TooManyRecords {
                count: records.len(),
            });
        }
        validate_batch(&records)?;
        Ok(WriteCommand::new(client_id, request_id, ack, records))
    }
}

#[cfg(test)]
mod tests;
