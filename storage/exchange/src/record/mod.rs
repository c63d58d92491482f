//! Exchange records (README.md, "Exchange records"): what the trading system writes and the store keeps.
//!
//! Records are archived with rkyv (pinned `=0.8.18`; little-endian, aligned, 32-bit relative
//! pointers). Decoding validates the archive (bytecheck) before using it, so damaged or foreign
//! bytes are an error, never a wrong record. Stored values are 16-byte aligned in tables; bytes
//! that are not aligned are copied into an aligned buffer first.
//!
//! Every field is described on its type ([`OrderInsert`], [`TradeExecuted`], [`AccountUpdate`],
//! [`Tick`], ...), all re-exported here; the files that define them are private.
//! [`validate_batch`] applies the stateless rules the leader checks before proposing.
//! [`samples`] stays a public module: tests, benchmarks and the test kit share its records.

pub(crate) mod account;
pub(crate) mod enums;
pub(crate) mod market;
pub(crate) mod order;
pub mod samples;
pub(crate) mod trade;
pub(crate) mod validate;

use bytes::Bytes;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

pub use account::{AccountUpdate, PositionUpdate};
pub use enums::{
    Direction, Offset, OrderStatus, PriceType, TimeCondition, UnknownEnum, VolumeCondition,
};
pub use market::{Level, OrderBookSnapshot, Tick, TICK_LEVELS};
pub use order::{OrderInsert, OrderState, OrderUpdate};
pub use trade::TradeExecuted;
pub use validate::{validate_batch, RecordError};

/// One record of a write batch.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub enum Record {
    /// A new order.
    OrderInsert(OrderInsert),
    /// A change to an order.
    OrderUpdate(OrderUpdate),
    /// A fill.
    TradeExecuted(TradeExecuted),
    /// An account's balances.
    AccountUpdate(AccountUpdate),
    /// A position.
    PositionUpdate(PositionUpdate),
    /// A market tick.
    Tick(Tick),
    /// An order-book snapshot.
    OrderBookSnapshot(OrderBookSnapshot),
}

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// [`OrderInsert`].
    OrderInsert,
    /// [`OrderUpdate`].
    OrderUpdate,
    /// [`TradeExecuted`].
    TradeExecuted,
    /// [`AccountUpdate`].
    AccountUpdate,
    /// [`PositionUpdate`].
    PositionUpdate,
    /// [`Tick`].
    Tick,
    /// [`OrderBookSnapshot`].
    OrderBookSnapshot,
}

impl RecordKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::OrderInsert => "OrderInsert",
            RecordKind::OrderUpdate => "OrderUpdate",
            RecordKind::TradeExecuted => "TradeExecuted",
            RecordKind::AccountUpdate => "AccountUpdate",
            RecordKind::PositionUpdate => "PositionUpdate",
            RecordKind::Tick => "Tick",
            RecordKind::OrderBookSnapshot => "OrderBookSnapshot",
        }
    }
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::OrderInsert(_) => RecordKind::OrderInsert,
            Record::OrderUpdate(_) => RecordKind::OrderUpdate,
            Record::TradeExecuted(_) => RecordKind::TradeExecuted,
            Record::AccountUpdate(_) => RecordKind::AccountUpdate,
            Record::PositionUpdate(_) => RecordKind::PositionUpdate,
            Record::Tick(_) => RecordKind::Tick,
            Record::OrderBookSnapshot(_) => RecordKind::OrderBookSnapshot,
        }
    }
}

/// Archived bytes that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("archived value does not decode: {0}")]
pub struct DecodeError(pub String);

/// Archives a value (records, stored order states, journal entries, ...).
pub fn encode<T>(value: &T) -> Bytes
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    SCRATCH.with(|scratch| {
        let buffer = scratch.take();
        match rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, buffer) {
            Ok(mut archived) => {
                let mut exact: AlignedVec = AlignedVec::with_capacity(archived.len());
                exact.extend_from_slice(&archived);
                archived.clear();
                if archived.capacity() <= MAX_SCRATCH_BYTES {
                    scratch.replace(archived);
                }
                Bytes::from_owner(exact)
            }
            // Serializing into memory cannot fail for these types (no shared pointers, no limits).
            Err(e) => unreachable!("archiving into memory failed: {e}"),
        }
    })
}

/// The largest archiving buffer a thread keeps for its next value.
const MAX_SCRATCH_BYTES: usize = 1 << 20;

thread_local! {
    /// Where a thread archives values before copying each out at its exact size: a growing
    /// buffer per value would cost an allocation per doubling, several for every record.
    static SCRATCH: std::cell::RefCell<AlignedVec> =
        std::cell::RefCell::new(AlignedVec::with_capacity(4096));
}

/// Checks and decodes archived bytes.
pub fn decode<T>(bytes: &[u8]) -> Result<T, DecodeError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let result = if (bytes.as_ptr() as usize).is_multiple_of(16) {
        rkyv::from_bytes::<T, rancor::Error>(bytes)
    } else {
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<T, rancor::Error>(&aligned)
    };
    result.map_err(|e| DecodeError(e.to_string()))
}

/// Checks archived bytes and hands their archived form to `read`, without deserializing: the
/// cheap path for readers that need a few fields of many records.
pub fn inspect<T, R>(bytes: &[u8], read: impl FnOnce(&T::Archived) -> R) -> Result<R, DecodeError>
where
    T: Archive,
    T::Archived:
        for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    let result = if (bytes.as_ptr() as usize).is_multiple_of(16) {
        rkyv::access::<T::Archived, rancor::Error>(bytes).map(read)
    } else {
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::access::<T::Archived, rancor::Error>(&aligned).map(read)
    };
    result.map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_round_trips_and_validates() {
        let samples = samples::records();
        assert_eq!(samples.len(), 7);
        validate_batch(&samples).unwrap();
        for r in &samples {
            let bytes = encode(r);
            assert_eq!(&decode::<Record>(&bytes).unwrap(), r);
            // Unaligned bytes decode too (copied first).
            let mut shifted = vec![0u8];
            shifted.extend_from_slice(&bytes);
            assert_eq!(&decode::<Record>(&shifted[1..]).unwrap(), r);
        }
    }

    #[test]
    fn values_archived_one_after_another_each_keep_their_own_bytes() {
        let small = encode(&samples::records()[0]);
        let large_record = Record::Tick(Tick {
            instrument_id: "x".repeat(3 << 20),
            ..match samples::first(|r| matches!(r, Record::Tick(_))) {
                Some(Record::Tick(t)) => t,
                _ => unreachable!("the samples hold a tick"),
            }
        });
        // Larger than the buffer a thread keeps: archived, then the buffer is let go.
        let large = encode(&large_record);
        let again = encode(&samples::records()[0]);
        assert_eq!(small, again);
        assert_eq!(decode::<Record>(&large).unwrap(), large_record);
        assert_eq!(small.as_ptr() as usize % 16, 0);
        assert_eq!(large.as_ptr() as usize % 16, 0);
    }

    /// Validation checks structure (lengths, pointers, enum tags, UTF-8); the checksums of
    /// the files they live in check content.
    #[test]
    fn malformed_bytes_are_an_error_not_a_record() {
        let bytes = encode(&samples::records()[0]).to_vec();
        assert!(decode::<Record>(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode::<Record>(&vec![0xffu8; bytes.len()]).is_err());
        assert!(decode::<Record>(&[]).is_err());
    }
}
