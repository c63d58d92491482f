//! Applying one committed log entry to the exchange ([`ExchangeMachine::apply`]).
//!
//! The replication layer decides *which* entry comes next and prepares the keys that say where
//! the engine stands in its log (the system batch); this module decides what the entry does to
//! the exchange data and what it answers. Everything an entry writes, the system batch
//! included, lands in the engine as one batch at the entry's log index.
//!
//! Writes are idempotent (see [`crate::dedup`]): a retry gets the original answer and changes
//! nothing; a request id reused with another payload is refused. Request ids are forgotten once
//! they fall out of the replicated dedup window, a few at a time as entries are applied.
//!
//! What depends on the input (a bad record, a bad calendar) is an answer, refused alike on
//! every node; an error returned here means the engine failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use qastore_lsm::{BatchOp, Engine, WriteBatch};

use crate::access::{self, AccessTable};
use crate::apply::{stage_known, KnownInstruments};
use crate::audit;
use crate::calendar::TradingCalendar;
use crate::cluster_config::ClusterConfig;
use crate::command::{payload_hash, Command, Response, SystemCommand};
use crate::consumer;
use crate::dedup::{self, Check, DedupRecord};
use crate::error::{Error, Result};
use crate::feed::{journal, CommittedBatch, CommittedEvent, EventSink};
use crate::keys::{self, KeyBuf, SYSTEM};
use crate::olap::{self, RetentionPolicy};
use crate::record::{DecodeError, Record};

/// Expired request ids are swept every this many entries...
const DEDUP_SWEEP_EVERY: u64 = 16;
/// ...at most this many per sweep.
const DEDUP_SWEEP_MAX: usize = 1024;

/// The key of a replicated setting. They live beside the replication layer's own system keys,
/// where nodes have always stored them.
fn setting_key(name: &str) -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("raft").last_id(name).build()
}

fn calendar_key() -> Vec<u8> {
    setting_key("calendar")
}

fn settings_key() -> Vec<u8> {
    setting_key("settings")
}

/// What one committed log entry brings to the exchange.
#[derive(Debug, Clone, Copy)]
pub enum EntryContent<'a> {
    /// A command, decoded.
    Command(&'a Command),
    /// Application data that does not decode as a command: refused, the entry still counts.
    Undecodable(&'a DecodeError),
    /// No command (a blank or membership entry): only the system batch is written.
    NoCommand,
}

/// The exchange's side of the replicated state machine: applies committed entries to the engine
/// and keeps the replicated trading calendar and cluster settings in force.
#[derive(Debug)]
pub struct ExchangeMachine {
    calendar: RwLock<Arc<TradingCalendar>>,
    settings: RwLock<Arc<ClusterConfig>>,
    access: RwLock<Arc<AccessTable>>,
    sink: OnceLock<Arc<dyn EventSink>>,
    /// Durable consumers this machine expired since it was opened.
    consumers_expired: AtomicU64,
    /// Instruments the engine's catalog is known to hold.
    instruments: KnownInstruments,
}

impl ExchangeMachine {
    /// The machine over `engine`, with the calendar and settings the engine holds (the
    /// built-in calendar and default settings where it holds none).
    pub fn open(engine: &Engine) -> Result<ExchangeMachine> {
        let (calendar, settings) = load(engine)?;
        Ok(ExchangeMachine {
            calendar: RwLock::new(Arc::new(calendar)),
            settings: RwLock::new(Arc::new(settings)),
            access: RwLock::new(Arc::new(access::load(engine)?)),
            sink: OnceLock::new(),
            consumers_expired: AtomicU64::new(0),
            instruments: KnownInstruments::default(),
        })
    }

    /// Takes the calendar and settings from `engine`, which replaced the previous one (a
    /// snapshot was installed).
    pub fn reload(&self, engine: &Engine) -> Result<()> {
        let (calendar, settings) = load(engine)?;
        *self.calendar.write() = Arc::new(calendar);
        *self.settings.write() = Arc::new(settings);
        *self.access.write() = Arc::new(access::load(engine)?);
        if let Some(sink) = self.sink.get() {
            sink.reset();
        }
        Ok(())
    }

    /// The trading calendar in force (replicated; the built-in one until replaced).
    pub fn calendar(&self) -> Arc<TradingCalendar> {
        self.calendar.read().clone()
    }

    /// The cluster settings in force.
    pub fn settings(&self) -> Arc<ClusterConfig> {
        self.settings.read().clone()
    }

    /// The access table in force (replicated; empty until an administrator sets an entry).
    pub fn access(&self) -> Arc<AccessTable> {
        self.access.read().clone()
    }

    /// How many durable consumers retention expired on this machine since it was opened.
    pub fn consumers_expired(&self) -> u64 {
        self.consumers_expired.load(Ordering::Relaxed)
    }

    /// Applies the entry at log index `index` (at least 1): what `content` asks, together with
    /// `sys`, the replication layer's keys for this entry, as one engine batch at `index`.
    /// Returns the answer for the proposer.
    pub fn apply(
        &self,
        engine: &Engine,
        index: u64,
        content: EntryContent<'_>,
        mut sys: WriteBatch,
    ) -> Result<Response> {
        if index.is_multiple_of(DEDUP_SWEEP_EVERY) {
            let window = self.settings().dedup_window_entries;
            dedup::expire(
                engine,
                index.saturating_sub(window),
                DEDUP_SWEEP_MAX,
                &mut sys,
            )?;
        }
        match content {
            EntryContent::Command(Command::Write(w)) => {
                let write = Write {
                    client_id: &w.client_id,
                    request_id: w.request_id,
                    payload_hash: w.payload_hash,
                    records: &w.records,
                    earlier_hash: None,
                    commit_ns: 0,
                };
                let response = apply_write(engine, index, &write, sys, &self.instruments)?;
                self.announce(index, &response, 0, || w.records.clone());
                Ok(response)
            }
            EntryContent::Command(Command::EncodedWrite(w)) => match w.decode_records() {
                Ok(records) => {
                    let write = Write {
                        client_id: &w.client_id,
                        request_id: w.request_id,
                        payload_hash: w.payload_hash(),
                        records: &records,
                        earlier_hash: Some(payload_hash),
                        commit_ns: w.commit_ns,
                    };
                    let response = apply_write(engine, index, &write, sys, &self.instruments)?;
                    self.announce(index, &response, w.commit_ns, || records);
                    Ok(response)
                }
                Err(e) => {
                    engine.apply(&sys, index)?;
                    self.announce_nothing(index);
                    Ok(Response::Refused {
                        reason: format!("the records do not decode: {e}"),
                    })
                }
            },
            EntryContent::Command(Command::WriteGroup(writes)) => {
                self.apply_group(engine, index, writes, sys)
            }
            EntryContent::Command(Command::System(s)) => {
                let response = self.apply_system(engine, index, s, sys)?;
                self.announce_nothing(index);
                Ok(response)
            }
            EntryContent::Undecodable(e) => {
                engine.apply(&sys, index)?;
                self.announce_nothing(index);
                Ok(Response::Refused {
                    reason: format!("the entry does not decode: {e}"),
                })
            }
            EntryContent::NoCommand => {
                engine.apply(&sys, index)?;
                self.announce_nothing(index);
                Ok(Response::Nothing)
            }
        }
    }

    /// Tells the event sink, if one is set, what the write at `index` applied.
    fn announce(
        &self,
        index: u64,
        response: &Response,
        commit_ns: i64,
        records: impl FnOnce() -> Vec<Record>,
    ) {
        let Some(sink) = self.sink.get() else {
            return;
        };
        let batch = match response {
            Response::Written { outcomes } => {
                let events = records()
                    .into_iter()
                    .zip(outcomes)
                    .enumerate()
                    .map(|(ordinal, (record, outcome))| CommittedEvent {
                        ordinal: ordinal as u32,
                        record,
                        outcome: *outcome,
                    })
                    .collect();
                Some(Arc::new(CommittedBatch {
                    index,
                    commit_ns,
                    events,
                }))
            }
            _ => None,
        };
        sink.applied(index, batch);
    }

    fn announce_nothing(&self, index: u64) {
        if let Some(sink) = self.sink.get() {
            sink.applied(index, None);
        }
    }

    /// Sets where the events of applied writes go (once; later calls are ignored). Every
    /// applied entry is announced to it, in log order, after it is visible to reads.
    pub fn set_event_sink(&self, sink: Arc<dyn EventSink>) {
        let _ = self.sink.set(sink);
    }

    fn apply_system(
        &self,
        engine: &Engine,
        index: u64,
        cmd: &SystemCommand,
        mut sys: WriteBatch,
    ) -> Result<Response> {
        match cmd {
            SystemCommand::ConvertDay {
                stream,
                trading_day,
            } => {
                let c = olap::convert_day(engine, (*stream).into(), *trading_day, index, sys)?;
                Ok(Response::Converted {
                    partitions: c.partitions.len(),
                    rows: c.rows,
                    bytes: c.bytes,
                })
            }
            SystemCommand::Retain {
                drop_days_before,
                drop_journal_before,
            } => {
                // Consumers hold the journal back, up to the replicated hard limit; those
                // retention must pass anyway expire in the same batch.
                let max_held = self.settings().consumer_max_held_entries;
                let hold = consumer::hold_journal(
                    engine,
                    *drop_journal_before,
                    consumer::hard_cutoff(index, max_held),
                )?;
                for c in &hold.expired {
                    tracing::warn!(
                        consumer = %c.name,
                        cursor = %c.cursor,
                        max_held,
                        "durable consumer expired: retention drops events it has not acknowledged"
                    );
                    consumer::put(&mut sys, c);
                }
                let policy = RetentionPolicy {
                    drop_days_before: *drop_days_before,
                    drop_journal_before: hold.cutoff,
                };
                let r = olap::retain(engine, policy, index, sys)?;
                self.consumers_expired
                    .fetch_add(hold.expired.len() as u64, Ordering::Relaxed);
                Ok(Response::Retained {
                    partitions_removed: r.partitions_removed,
                    journal_entries_removed: r.journal_entries_removed,
                    consumers_expired: hold.expired.len(),
                })
            }
            SystemCommand::CreateConsumer {
                name,
                cursor,
                created_at_ns,
            } => {
                let response =
                    consumer::create(engine, index, name, *cursor, *created_at_ns, &mut sys)?;
                engine.apply(&sys, index)?;
                Ok(response)
            }
            SystemCommand::AckConsumer { name, position } => {
                let response = consumer::ack(engine, index, name, *position, &mut sys)?;
                engine.apply(&sys, index)?;
                Ok(response)
            }
            SystemCommand::DeleteConsumer { name } => {
                let response = consumer::delete(engine, name, &mut sys)?;
                engine.apply(&sys, index)?;
                Ok(response)
            }
            SystemCommand::SetCalendar { toml } => match TradingCalendar::from_toml(toml) {
                Ok(cal) => {
                    sys.put(calendar_key(), Bytes::from(toml.clone()));
                    engine.apply(&sys, index)?;
                    *self.calendar.write() = Arc::new(cal);
                    Ok(Response::SettingsChanged)
                }
                Err(e) => {
                    engine.apply(&sys, index)?;
                    Ok(Response::Refused {
                        reason: format!("calendar: {e}"),
                    })
                }
            },
            // The hash itself is the replication layer's: it compares replicas at log indexes.
            SystemCommand::HashMark => {
                engine.apply(&sys, index)?;
                Ok(Response::HashMarked)
            }
            SystemCommand::SetAccess(change) => {
                let client = &change.client;
                let scope = access::Scope {
                    roles: &change.roles,
                    users: &change.users,
                    instruments: &change.instruments,
                };
                let (response, grant) = access::set(
                    client,
                    scope,
                    &change.set_by,
                    change.set_at_ns,
                    index,
                    &mut sys,
                );
                engine.apply(&sys, index)?;
                if let Some(grant) = grant {
                    let mut table = (*self.access()).clone();
                    table.insert(client.clone(), grant);
                    *self.access.write() = Arc::new(table);
                }
                Ok(response)
            }
            SystemCommand::RemoveAccess { client } => {
                let mut table = (*self.access()).clone();
                let response = access::remove(&table, client, index, &mut sys);
                engine.apply(&sys, index)?;
                if table.remove(client).is_some() {
                    *self.access.write() = Arc::new(table);
                }
                Ok(response)
            }
            SystemCommand::Audit(entry) => {
                let days = self.settings().audit_retention_days;
                if days > 0 {
                    let keep_ns = i64::from(days) * 86_400 * 1_000_000_000;
                    audit::drop_expired(engine, entry.at_ns.saturating_sub(keep_ns), &mut sys)?;
                }
                audit::put(entry, index, &mut sys);
                engine.apply(&sys, index)?;
                Ok(Response::Audited { index })
            }
            SystemCommand::SetClusterSettings { toml } => match ClusterConfig::from_toml(toml) {
                Ok(s) => {
                    sys.put(settings_key(), Bytes::from(toml.clone()));
                    engine.apply(&sys, index)?;
                    *self.settings.write() = Arc::new(s);
                    Ok(Response::SettingsChanged)
                }
                Err(e) => {
                    engine.apply(&sys, index)?;
                    Ok(Response::Refused {
                        reason: e.to_string(),
                    })
                }
            },
        }
    }
}

/// A client's write, in whichever format it was logged.
struct Write<'a> {
    client_id: &'a str,
    request_id: u64,
    payload_hash: u64,
    records: &'a [Record],
    /// How the earlier format hashed the same records: a retry, in this format, of a write
    /// logged in the earlier one is still a retry.
    earlier_hash: Option<fn(&[Record]) -> u64>,
    /// When the leader proposed it (0: not recorded).
    commit_ns: i64,
}

/// Looks the write up among the remembered ones, comparing its earlier-format hash too before
/// calling its request id reused.
fn check_dedup(engine: &Engine, w: &Write<'_>) -> Result<Check> {
    let check = dedup::check(engine, w.client_id, w.request_id, w.payload_hash)?;
    match (&check, w.earlier_hash) {
        (Check::Reused { .. }, Some(earlier)) => {
            match dedup::check(engine, w.client_id, w.request_id, earlier(w.records))? {
                retry @ Check::Retry(_) => Ok(retry),
                _ => Ok(check),
            }
        }
        _ => Ok(check),
    }
}

fn apply_write(
    engine: &Engine,
    index: u64,
    w: &Write<'_>,
    sys: WriteBatch,
    instruments: &KnownInstruments,
) -> Result<Response> {
    match check_dedup(engine, w)? {
        Check::Retry(first) => {
            engine.apply(&sys, index)?;
            Ok(Response::Duplicate {
                original_index: first.log_index,
                outcomes: first.outcomes,
            })
        }
        Check::Reused { original_index } => {
            engine.apply(&sys, index)?;
            Ok(Response::RequestIdReused { original_index })
        }
        Check::New => {
            let staged = match stage_known(engine, w.records, index, Some(instruments)) {
                Ok(s) => s,
                Err(Error::Engine(qastore_lsm::Error::InvalidArgument(e))) => {
                    engine.apply(&sys, index)?;
                    return Ok(Response::Refused {
                        reason: e.to_string(),
                    });
                }
                Err(e) => return Err(e),
            };
            let mut batch = staged.batch;
            dedup::remember(
                &mut batch,
                w.client_id,
                w.request_id,
                &DedupRecord {
                    log_index: index,
                    payload_hash: w.payload_hash,
                    outcomes: staged.outcomes.clone(),
                },
            );
            if w.commit_ns != 0 {
                batch.put(keys::commit_time(index), journal::encode_time(w.commit_ns));
            }
            append_ops(&mut batch, &sys);
            match engine.apply(&batch, index) {
                Ok(()) => {
                    instruments.remember(staged.new_instruments);
                    Ok(Response::Written {
                        outcomes: staged.outcomes,
                    })
                }
                Err(qastore_lsm::Error::InvalidArgument(e)) => {
                    engine.apply(&sys, index)?;
                    Ok(Response::Refused {
                        reason: e.to_string(),
                    })
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn append_ops(batch: &mut WriteBatch, extra: &WriteBatch) {
    for op in extra.ops() {
        match op {
            BatchOp::Put { key, value } => batch.put(key.clone(), value.clone()),
            BatchOp::Delete { key } => batch.delete(key.clone()),
        };
    }
}

fn read_text(engine: &Engine, key: &[u8], name: &'static str) -> Result<Option<String>> {
    match engine.get(key)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| Error::BadSetting {
                name,
                reason: "not UTF-8".into(),
            }),
    }
}

/// The replicated calendar and settings `engine` holds.
fn load(engine: &Engine) -> Result<(TradingCalendar, ClusterConfig)> {
    let calendar = match read_text(engine, &calendar_key(), "stored calendar")? {
        Some(t) => TradingCalendar::from_toml(&t).map_err(|e| Error::BadSetting {
            name: "stored calendar",
            reason: e.to_string(),
        })?,
        None => TradingCalendar::builtin(),
    };
    let settings = match read_text(engine, &settings_key(), "stored settings")? {
        Some(t) => ClusterConfig::from_toml(&t)?,
        None => ClusterConfig::default(),
    };
    Ok((calendar, settings))
}

mod write_group;

#[cfg(test)]
mod tests;
