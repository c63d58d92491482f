//! Applying a batch of exchange records: one atomic engine batch, the same on every node.
//!
//! Outcomes that depend on stored state are decided here, record by record, each one seeing
//! the records before it in the same batch:
//!
//! * an `OrderInsert` stores the order, unless it exists (then it is a duplicate and changes
//!   nothing); updates parked for it are merged in order and removed;
//! * an `OrderUpdate` changes the stored order's status, volume left and last message; if the
//!   order has not arrived yet (services may deliver out of order) the update is parked under
//!   the order's id until its insert comes;
//! * account and position updates replace the latest state; trades (indexed by instrument and
//!   by user), ticks and book snapshots are added.
//!
//! Every record is also written to the event journal under (log index, position in batch),
//! with its outcome: the audit trail and what subscriptions replay from. Order-related events
//! get a pointer from the order's history range, so an order's history is one range scan.
//!
//! Nothing here reads a clock or anything but the engine and the batch, so every replica makes
//! the same decisions.

use std::collections::BTreeMap;

use bytes::Bytes;
use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{self, Stream};
use crate::record::{
    decode, encode, AccountUpdate, OrderBookSnapshot, OrderInsert, OrderState, OrderUpdate,
    PositionUpdate, Record, Tick, TradeExecuted,
};
use qastore_lsm::Engine;
use qastore_lsm::InvalidArgument;
use qastore_lsm::WriteBatch;

// rkyv's derive leaves the fields of its resolver enum's struct variants undocumented, so the
// lint is allowed on the module that holds only `Outcome` (every item written here has docs).
#[allow(missing_docs)]
mod outcome;
pub use outcome::{ArchivedOutcome, Outcome};
mod known_instruments;
pub use known_instruments::KnownInstruments;

/// The most records one batch may hold (each record becomes up to five engine operations).
pub const MAX_BATCH_RECORDS: usize = 10_000;

/// One event of the journal: a record as applied, and what it did.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The log index of its batch.
    pub log_index: u64,
    /// Its position in the batch.
    pub ordinal: u32,
    /// The record.
    pub record: Record,
    /// What applying it did.
    pub outcome: Outcome,
}

/// A [`JournalEntry`] borrowing its record, archived as a `JournalEntry` (the same bytes, the
/// fields archived in the same order): the journal is written without copying every record.
struct JournalEntryRef<'a> {
    log_index: u64,
    ordinal: u32,
    record: &'a Record,
    outcome: Outcome,
}

/// What archiving a [`JournalEntryRef`]'s fields left to resolve.
struct JournalEntryRefResolver {
    log_index: <u64 as Archive>::Resolver,
    ordinal: <u32 as Archive>::Resolver,
    record: <Record as Archive>::Resolver,
    outcome: <Outcome as Archive>::Resolver,
}

impl Archive for JournalEntryRef<'_> {
    type Archived = ArchivedJournalEntry;
    type Resolver = JournalEntryRefResolver;

    // Plain numbers resolve with `()`, passed on like every other field's resolver.
    #[allow(clippy::unit_arg)]
    fn resolve(&self, resolver: Self::Resolver, out: rkyv::Place<Self::Archived>) {
        rkyv::munge::munge!(let ArchivedJournalEntry { log_index, ordinal, record, outcome } = out);
        self.log_index.resolve(resolver.log_index, log_index);
        self.ordinal.resolve(resolver.ordinal, ordinal);
        self.record.resolve(resolver.record, record);
        self.outcome.resolve(resolver.outcome, outcome);
    }
}

impl<S> Serialize<S> for JournalEntryRef<'_>
where
    S: rkyv::rancor::Fallible + ?Sized,
    u64: Serialize<S>,
    u32: Serialize<S>,
    Record: Serialize<S>,
    Outcome: Serialize<S>,
{
    fn serialize(&self, serializer: &mut S) -> std::result::Result<Self::Resolver, S::Error> {
        Ok(JournalEntryRefResolver {
            log_index: self.log_index.serialize(serializer)?,
            ordinal: self.ordinal.serialize(serializer)?,
            record: self.record.serialize(serializer)?,
            outcome: self.outcome.serialize(serializer)?,
        })
    }
}

/// A batch ready to be applied: the engine operations and each record's outcome.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The engine batch (callers may add their own operations, e.g. system keys).
    pub batch: WriteBatch,
    /// One outcome per record, in order.
    pub outcomes: Vec<Outcome>,
    /// Catalog keys the batch adds: remember them ([`KnownInstruments::remember`]) once the
    /// batch is in the engine.
    pub new_instruments: Vec<Vec<u8>>,
}

/// Reads through the writes staged so far (this write's, then the earlier writes' of the same
/// entry), then the engine.
struct Overlay<'a> {
    engine: &'a Engine,
    /// What the entry's earlier writes staged.
    base: Option<&'a BTreeMap<Vec<u8>, Option<Bytes>>>,
    pending: BTreeMap<Vec<u8>, Option<Bytes>>,
    batch: WriteBatch,
    known: Option<&'a KnownInstruments>,
    new_instruments: Vec<Vec<u8>>,
}

impl<'a> Overlay<'a> {
    /// The staged value of `key`, if this write or an earlier one of the entry staged one.
    fn staged(&self, key: &[u8]) -> Option<&Option<Bytes>> {
        self.pending
            .get(key)
            .or_else(|| self.base.and_then(|b| b.get(key)))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        match self.staged(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.engine.get(key)?),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Bytes) {
        self.batch.put(key.clone(), value.clone());
        self.pending.insert(key, Some(value));
    }

    /// Stages a value no apply step reads back (journal, history and index entries, states
    /// that are only ever replaced): it goes into the batch without the read overlay's copy.
    /// A key that apply may read must use [`Overlay::put`].
    fn put_unread(&mut self, key: Vec<u8>, value: Bytes) {
        self.batch.put(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.batch.delete(key.clone());
        self.pending.insert(key, None);
    }

    /// Every live (key, value) under `prefix`, staged writes included, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Bytes)>> {
        let mut found: BTreeMap<Vec<u8>, Bytes> = BTreeMap::new();
        for row in self.engine.scan_prefix(prefix) {
            let (k, v) = row?;
            found.insert(k.to_vec(), v);
        }
        for staged in self.base.into_iter().chain([&self.pending]) {
            for (k, v) in staged.range(prefix.to_vec()..) {
                if !k.starts_with(prefix) {
                    break;
                }
                match v {
                    Some(v) => found.insert(k.clone(), v.clone()),
                    None => found.remove(k),
                };
            }
        }
        Ok(found.into_iter().collect())
    }

    fn note_instrument(&mut self, stream: Stream, instrument: &str) -> Result<()> {
        let key = keys::instrument(stream, instrument);
        if self.known.is_some_and(|k| k.contains(&key)) {
            return Ok(());
        }
        match self.staged(&key) {
            Some(Some(_)) => return Ok(()),
            Some(None) => {}
            None => {
                if self.engine.get(&key)?.is_some() {
                    if let Some(known) = self.known {
                        known.remember([key]);
                    }
                    return Ok(());
                }
            }
        }
        self.new_instruments.push(key.clone());
        self.put(key, Bytes::new());
        Ok(())
    }
}

fn bad_value(key: &[u8], e: impl std::fmt::Display) -> Error {
    Error::bad_value(String::from_utf8_lossy(key).into_owned(), e.to_string())
}

/// Reads the stored order under `key`, if any.
fn stored_order(overlay: &Overlay<'_>, key: &[u8]) -> Result<Option<OrderState>> {
    match overlay.get(key)? {
        Some(v) => decode::<OrderState>(&v)
            .map(Some)
            .map_err(|e| bad_value(key, e)),
        None => Ok(None),
    }
}

fn insert_order(overlay: &mut Overlay<'_>, o: &OrderInsert) -> Result<Outcome> {
    let key = keys::order(&o.user_id, &o.order_id);
    if overlay.get(&key)?.is_some() {
        return Ok(Outcome::DuplicateOrder);
    }
    let mut state = OrderState::new(o.clone());
    let marker = keys::parked_marker(&o.user_id, &o.order_id);
    let parked = if overlay.get(&marker)?.is_some() {
        overlay.delete(marker);
        overlay.scan_prefix(&keys::parked_for(&o.user_id, &o.order_id))?
    } else {
        Vec::new()
    };
    for (pkey, value) in &parked {
        let update = decode::<OrderUpdate>(value).map_err(|e| bad_value(pkey, e))?;
        state.apply(&update);
        overlay.delete(pkey.clone());
    }
    overlay.put(key, encode(&state));
    Ok(Outcome::OrderInserted {
        merged_updates: parked.len() as u32,
    })
}

fn update_order(
    overlay: &mut Overlay<'_>,
    u: &OrderUpdate,
    index: u64,
    ordinal: u32,
) -> Result<Outcome> {
    let key = keys::order(&u.user_id, &u.order_id);
    match stored_order(overlay, &key)? {
        Some(mut state) => {
            state.apply(u);
            overlay.put(key, encode(&state));
            Ok(Outcome::OrderUpdated)
        }
        None => {
            let pkey = keys::parked(&u.user_id, &u.order_id, index, ordinal);
            overlay.put(pkey, encode(u));
            overlay.put(keys::parked_marker(&u.user_id, &u.order_id), Bytes::new());
            Ok(Outcome::UpdateParked)
        }
    }
}

fn record_trade(overlay: &mut Overlay<'_>, t: &TradeExecuted) -> Result<Outcome> {
    let value = encode(t);
    overlay.put_unread(
        keys::trade_by_instrument(&t.instrument_id, t.trade_date_time, &t.user_id, &t.trade_id),
        value.clone(),
    );
    overlay.put_unread(
        keys::trade_by_user(&t.user_id, t.trade_date_time, &t.trade_id),
        value,
    );
    overlay.note_instrument(Stream::Trades, &t.instrument_id)?;
    Ok(Outcome::TradeRecorded)
}

fn replace_account(overlay: &mut Overlay<'_>, a: &AccountUpdate) -> Outcome {
    overlay.put_unread(keys::account(&a.user_id, &a.currency), encode(a));
    Outcome::AccountReplaced
}

fn replace_position(overlay: &mut Overlay<'_>, p: &PositionUpdate) -> Outcome {
    overlay.put_unread(
        keys::position(&p.user_id, &p.exchange_id, &p.instrument_id),
        encode(p),
    );
    Outcome::PositionReplaced
}

fn record_tick(overlay: &mut Overlay<'_>, t: &Tick) -> Result<Outcome> {
    overlay.put_unread(
        keys::tick(&t.instrument_id, t.datetime, t.sequence),
        encode(t),
    );
    overlay.note_instrument(Stream::Ticks, &t.instrument_id)?;
    Ok(Outcome::TickRecorded)
}

fn record_book(overlay: &mut Overlay<'_>, b: &OrderBookSnapshot) -> Outcome {
    overlay.put_unread(keys::book(&b.instrument_id, b.datetime), encode(b));
    Outcome::BookRecorded
}

/// The order an event belongs to, if any.
fn order_of(record: &Record) -> Option<(&str, &str)> {
    match record {
        Record::OrderInsert(o) => Some((&o.user_id, &o.order_id)),
        Record::OrderUpdate(u) => Some((&u.user_id, &u.order_id)),
        Record::TradeExecuted(t) => Some((&t.user_id, &t.order_id)),
        _ => None,
    }
}

/// Decides every record's outcome and builds the engine batch for the batch at `log_index`,
/// without applying it.
pub fn stage(engine: &Engine, records: &[Record], log_index: u64) -> Result<Staged> {
    stage_known(engine, records, log_index, None)
}

/// [`stage`], skipping the catalog lookups of the instruments `known` holds.
pub fn stage_known(
    engine: &Engine,
    records: &[Record],
    log_index: u64,
    known: Option<&KnownInstruments>,
) -> Result<Staged> {
    let mut stager = EntryStager::new(engine, log_index, known);
    stager.stage(records)?;
    Ok(stager.finish())
}

/// One client write's part of an entry, as staged by [`EntryStager::stage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedWrite {
    /// The position in the entry of its first record: its records' journal ordinals follow on.
    pub first_ordinal: u32,
    /// One outcome per record, in order.
    pub outcomes: Vec<Outcome>,
}

/// Stages the client writes of one log entry one after another, each deciding its outcomes
/// after the writes before it, their records numbered on from one write to the next.
pub struct EntryStager<'a> {
    engine: &'a Engine,
    log_index: u64,
    known: Option<&'a KnownInstruments>,
    pending: BTreeMap<Vec<u8>, Option<Bytes>>,
    batch: WriteBatch,
    new_instruments: Vec<Vec<u8>>,
    outcomes: Vec<Outcome>,
    next_ordinal: u32,
}

impl<'a> EntryStager<'a> {
    /// An empty stager for the entry at `log_index`, skipping the catalog lookups of the
    /// instruments `known` holds.
    pub fn new(
        engine: &'a Engine,
        log_index: u64,
        known: Option<&'a KnownInstruments>,
    ) -> EntryStager<'a> {
        EntryStager {
            engine,
            log_index,
            known,
            pending: BTreeMap::new(),
            batch: WriteBatch::new(),
            new_instruments: Vec::new(),
            outcomes: Vec::new(),
            next_ordinal: 0,
        }
    }

    /// Stages `records` as the entry's next write. On an error nothing of this write stays
    /// staged; the writes staged before it are kept.
    pub fn stage(&mut self, records: &[Record]) -> Result<StagedWrite> {
        let first = self.next_ordinal;
        let total = first as usize + records.len();
        if total > MAX_BATCH_RECORDS {
            return Err(InvalidArgument::BatchTooLarge {
                len: total,
                max: MAX_BATCH_RECORDS,
            }
            .into());
        }
        let base = (!self.pending.is_empty()).then_some(&self.pending);
        let mut overlay = Overlay {
            engine: self.engine,
            base,
            pending: BTreeMap::new(),
            batch: WriteBatch::new(),
            known: self.known,
            new_instruments: Vec::new(),
        };
        let outcomes = stage_records(&mut overlay, records, self.log_index, first)?;
        let Overlay {
            pending,
            batch,
            new_instruments,
            ..
        } = overlay;
        if self.pending.is_empty() {
            self.pending = pending;
        } else {
            self.pending.extend(pending);
        }
        self.batch.append(batch);
        self.new_instruments.extend(new_instruments);
        self.outcomes.extend_from_slice(&outcomes);
        self.next_ordinal = total as u32;
        Ok(StagedWrite {
            first_ordinal: first,
            outcomes,
        })
    }

    /// The engine batch staged so far, for operations of the caller's own (dedup records).
    pub fn batch_mut(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// The entry's engine batch, every staged record's outcome in order, and the catalog
    /// keys it adds.
    pub fn finish(self) -> Staged {
        Staged {
            batch: self.batch,
            outcomes: self.outcomes,
            new_instruments: self.new_instruments,
        }
    }
}

/// Decides the outcomes of `records`, numbered from `first_ordinal` in the entry at
/// `log_index`, staging their writes in `overlay`.
fn stage_records(
    overlay: &mut Overlay<'_>,
    records: &[Record],
    log_index: u64,
    first_ordinal: u32,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(records.len());
    for (position, record) in records.iter().enumerate() {
        let ordinal = first_ordinal + position as u32;
        let outcome = match record {
            Record::OrderInsert(o) => insert_order(overlay, o)?,
            Record::OrderUpdate(u) => update_order(overlay, u, log_index, ordinal)?,
            Record::TradeExecuted(t) => record_trade(overlay, t)?,
            Record::AccountUpdate(a) => replace_account(overlay, a),
            Record::PositionUpdate(p) => replace_position(overlay, p),
            Record::Tick(t) => record_tick(overlay, t)?,
            Record::OrderBookSnapshot(b) => record_book(overlay, b),
        };
        let entry = JournalEntryRef {
            log_index,
            ordinal,
            record,
            outcome,
        };
        overlay.put_unread(keys::journal(log_index, ordinal), encode(&entry));
        if let Some((user, order_id)) = order_of(record) {
            overlay.put_unread(
                keys::history(user, order_id, log_index, ordinal),
                Bytes::new(),
            );
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Applies `records` as the entry at `log_index` and returns each record's outcome.
pub fn apply(engine: &Engine, records: &[Record], log_index: u64) -> Result<Vec<Outcome>> {
    let staged = stage(engine, records, log_index)?;
    engine.apply(&staged.batch, log_index)?;
    Ok(staged.outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::samples;

    #[test]
    fn a_journal_entry_borrowing_its_record_archives_to_the_same_bytes_as_one_owning_it() {
        let outcomes = [
            Outcome::OrderInserted { merged_updates: 3 },
            Outcome::DuplicateOrder,
            Outcome::TickRecorded,
        ];
        for (n, record) in samples::records().iter().enumerate() {
            let outcome = outcomes[n % outcomes.len()];
            let (log_index, ordinal) = (1_000 + n as u64, n as u32 * 7);
            let borrowed = encode(&JournalEntryRef {
                log_index,
                ordinal,
                record,
                outcome,
            });
            let owned = JournalEntry {
                log_index,
                ordinal,
                record: record.clone(),
                outcome,
            };
            assert_eq!(borrowed, encode(&owned), "record {n}");
            assert_eq!(decode::<JournalEntry>(&borrowed).unwrap(), owned);
        }
    }
}
