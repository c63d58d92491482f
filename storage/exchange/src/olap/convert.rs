//! Converting a closed trading day of ticks or trades to Parquet.
//!
//! The conversion runs at a log index (the Raft layer proposes it, so every node runs it at the
//! same point): for each instrument of the stream, the day's rows still in the LSM (all of them
//! the first time; afterwards only rows that arrived after that conversion, late rows) are read,
//! written as the partition's next part file (temporary name, fsync, rename, directory fsync),
//! and then one engine batch at the log index adds the catalog entries and deletes the LSM
//! copies (for trades, the by-instrument copies; the by-user index stays). A crash before the
//! batch is durable is repaired by re-applying the entry: the files are written again, byte for
//! byte the same. Running it again with no late rows changes nothing. A late row identical to
//! the copy a part already holds (a feed sent again) leaves the LSM without being written twice.

use std::collections::HashMap;

use super::catalog::{self, CatalogEntry};
use super::origin::{self, DayOrigins};
use super::parquet::{encode_ticks, encode_trades, RowOrigin};
use super::read::{read_partition_ticks, read_partition_trades};
use crate::error::{Error, Result};
use crate::feed::Position;
use crate::keys::{self, Stream};
use crate::query::decode_at;
use crate::query::range::{scan_keys, TimeRange};
use crate::record::{Tick, TradeExecuted};
use parquet::errors::ParquetError;
use qastore_lsm::vfs::{parent_dir, write_atomic};
use qastore_lsm::Engine;
use qastore_lsm::WriteBatch;

const DAY_NANOS: i64 = 86_400 * 1_000_000_000;

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversion {
    /// The part files written (part 0 of a newly converted partition, or a later part with the
    /// late rows of one converted before).
    pub partitions: Vec<CatalogEntry>,
    /// Rows converted.
    pub rows: u64,
    /// Of those, rows appended to partitions converted before (late rows).
    pub late_rows: u64,
    /// Late rows not written because an earlier part holds the same row already (removed from
    /// the LSM all the same).
    pub duplicates_dropped: u64,
    /// Parquet bytes written.
    pub bytes: u64,
    /// Instruments skipped because the day was already converted for them and no rows came
    /// since (or retention removed it).
    pub already_converted: usize,
}

/// Instruments that have rows of `stream`.
pub(super) fn instruments(engine: &Engine, stream: Stream) -> Result<Vec<String>> {
    let prefix = keys::instruments(stream);
    engine
        .scan_prefix(&prefix)
        .map(|row| {
            let (k, _) = row?;
            Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
        })
        .collect()
}

/// Keys and records of one instrument's `day` (at most `limit` of them), in time order. A
/// trading day's rows lie within a few calendar days before it (night sessions, weekends,
/// holidays) and never after it.
fn day_rows<T>(
    engine: &Engine,
    stream: Stream,
    (instrument, day): (&str, u32),
    trading_day: fn(&T) -> u32,
    limit: usize,
) -> Result<Vec<(Vec<u8>, T)>>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    let midnight = crate::calendar::day_number(day) * DAY_NANOS;
    let (from, to) = (midnight - 12 * DAY_NANOS, midnight + 2 * DAY_NANOS);
    let (lower, upper) = match stream {
        Stream::Ticks => (
            keys::instrument_ticks_at(instrument, from),
            keys::instrument_ticks_at(instrument, to),
        ),
        Stream::Trades => (
            keys::instrument_trades_at(instrument, from),
            keys::instrument_trades_at(instrument, to),
        ),
    };
    let mut out = Vec::new();
    for row in scan_keys(engine, lower, upper, None) {
        let (k, v) = row?;
        let record: T = decode_at(&k, &v)?;
        if trading_day(&record) == day {
            out.push((k.to_vec(), record));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Whether one instrument's `day` has rows in the LSM.
fn has_rows(engine: &Engine, stream: Stream, instrument: &str, day: u32) -> Result<bool> {
    Ok(match stream {
        Stream::Ticks => {
            !day_rows::<Tick>(engine, stream, (instrument, day), |t| t.trading_day, 1)?.is_empty()
        }
        Stream::Trades => {
            !day_rows::<TradeExecuted>(engine, stream, (instrument, day), |t| t.trading_day, 1)?
                .is_empty()
        }
    })
}

/// One instrument's day, encoded.
struct Encoded {
    /// The LSM keys of the rows (deleted once the file is in the catalog).
    keys: Vec<Vec<u8>>,
    /// Where each row came from.
    origins: Vec<RowOrigin>,
    /// The Parquet file.
    bytes: Vec<u8>,
    /// First and last event time.
    span: (i64, i64),
}

/// Writes part `part` of a partition crash-safely and returns its catalog entry.
fn write_part(
    engine: &Engine,
    stream: Stream,
    day: u32,
    instrument: &str,
    part: u32,
    data: &Encoded,
    log_index: u64,
) -> Result<CatalogEntry> {
    let (bytes, rows, (min_time, max_time)) = (&data.bytes, data.keys.len() as u64, data.span);
    let rel = catalog::part_file(stream, day, instrument, part);
    let path = engine.dir().join(&rel);
    let vfs = engine.vfs();
    let dir = parent_dir(&path).to_path_buf();
    if !vfs.exists(&dir)? {
        vfs.create_dir_all(&dir)?;
        // Make every new directory's entry durable, up to the engine directory.
        let mut d = dir.as_path();
        while d != engine.dir() {
            let parent = parent_dir(d);
            vfs.sync_dir(parent)?;
            d = parent;
        }
    }
    write_atomic(vfs.as_ref(), &path, bytes)?;
    Ok(CatalogEntry {
        stream: stream.byte(),
        trading_day: day,
        instrument: instrument.to_string(),
        file: rel,
        rows,
        min_time,
        max_time,
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
        converted_at: log_index,
        removed_at: None,
    })
}

fn parquet_error(path: String, e: impl std::fmt::Display) -> Error {
    Error::Olap {
        path,
        reason: e.to_string(),
    }
}

/// Takes out of `rows` (late rows of a partition) those identical to the newest copy already
/// in one of its `earlier` parts (a feed sent again): they would add nothing to what the API
/// answers, but a second copy in the files. Returns their keys, to delete from the LSM.
fn drop_known<T: PartialEq>(
    rows: &mut Vec<(Vec<u8>, T)>,
    earlier: &[&CatalogEntry],
    time: fn(&T) -> i64,
    read: impl Fn(&CatalogEntry, TimeRange) -> Result<Vec<(Vec<u8>, T)>>,
) -> Result<Vec<Vec<u8>>> {
    let span = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) if !earlier.is_empty() => {
            TimeRange::new(time(&a.1), time(&b.1).saturating_add(1))
        }
        _ => return Ok(Vec::new()),
    };
    // Later parts overwrite earlier ones: the map holds each key's newest copy.
    let mut known: HashMap<Vec<u8>, T> = HashMap::new();
    for entry in earlier {
        known.extend(read(entry, span)?);
    }
    let mut dropped = Vec::new();
    rows.retain(|(k, r)| {
        let same = known.get(k) == Some(r);
        if same {
            dropped.push(k.clone());
        }
        !same
    });
    Ok(dropped)
}

/// Where the rows of one partition come from, and the events no part will hold at their own
/// position (replaced before conversion, or resent copies left out).
struct Origins<'a> {
    day: &'a mut DayOrigins,
    /// The log index of the partition's last conversion (0: none).
    since: u64,
    superseded: &'a mut Vec<Position>,
}

impl Origins<'_> {
    fn of(&mut self, key: &[u8]) -> RowOrigin {
        self.day.take(key, self.since, self.superseded)
    }

    /// The origins of the rows kept, noting the left-out copies as superseded.
    fn resolve(&mut self, kept: &[Vec<u8>], left_out: &[Vec<u8>]) -> Vec<RowOrigin> {
        for k in left_out {
            if let Some(p) = self.of(k).position() {
                self.superseded.push(p);
            }
        }
        kept.iter().map(|k| self.of(k)).collect()
    }
}

/// Encodes rows and their origins as a Parquet file.
type EncodeRows<T> = fn(&[T], &[RowOrigin]) -> std::result::Result<Vec<u8>, ParquetError>;

/// Encodes `rows` (in time order) with their origins (noting the `left_out` copies as
/// superseded); `None` when there are none.
fn encode_rows<T>(
    rows: Vec<(Vec<u8>, T)>,
    left_out: &[Vec<u8>],
    mut origins: Origins<'_>,
    time: fn(&T) -> i64,
    encode: EncodeRows<T>,
) -> std::result::Result<Option<Encoded>, ParquetError> {
    let (keys, records): (Vec<Vec<u8>>, Vec<T>) = rows.into_iter().unzip();
    let origins = origins.resolve(&keys, left_out);
    let span = match (records.first(), records.last()) {
        (Some(a), Some(b)) => (time(a), time(b)),
        _ => return Ok(None),
    };
    let bytes = encode(&records, &origins)?;
    Ok(Some(Encoded {
        keys,
        origins,
        bytes,
        span,
    }))
}

/// The rows of one instrument's `day` still in the LSM, encoded as part `part` (`None` when
/// there are none to write), and the keys of late rows left out because `earlier` parts hold
/// them already.
fn encode_day(
    engine: &Engine,
    stream: Stream,
    (day, instrument, part): (u32, &str, u32),
    earlier: &[&CatalogEntry],
    origins: Origins<'_>,
) -> Result<(Option<Encoded>, Vec<Vec<u8>>)> {
    let file = || catalog::part_file(stream, day, instrument, part);
    match stream {
        Stream::Ticks => {
            let mut rows = day_rows::<Tick>(
                engine,
                stream,
                (instrument, day),
                |t| t.trading_day,
                usize::MAX,
            )?;
            let dropped = drop_known(
                &mut rows,
                earlier,
                |t| t.datetime,
                |e, range| {
                    let ticks = read_partition_ticks(engine, e, range)?;
                    Ok(ticks
                        .into_iter()
                        .map(|t| (keys::tick(&t.instrument_id, t.datetime, t.sequence), t))
                        .collect())
                },
            )?;
            let encoded = encode_rows(rows, &dropped, origins, |t| t.datetime, encode_ticks)
                .map_err(|e| parquet_error(file(), e))?;
            Ok((encoded, dropped))
        }
        Stream::Trades => {
            let mut rows = day_rows::<TradeExecuted>(
                engine,
                stream,
                (instrument, day),
                |t| t.trading_day,
                usize::MAX,
            )?;
            let dropped = drop_known(
                &mut rows,
                earlier,
                |t| t.trade_date_time,
                |e, range| {
                    let trades = read_partition_trades(engine, e, range)?;
                    Ok(trades
                        .into_iter()
                        .map(|t| {
                            let key = keys::trade_by_instrument(
                                &t.instrument_id,
                                t.trade_date_time,
                                &t.user_id,
                                &t.trade_id,
                            );
                            (key, t)
                        })
                        .collect())
                },
            )?;
            let encoded = encode_rows(
                rows,
                &dropped,
                origins,
                |t| t.trade_date_time,
                encode_trades,
            )
            .map_err(|e| parquet_error(file(), e))?;
            Ok((encoded, dropped))
        }
    }
}

/// Converts trading day `day` of `stream` to Parquet at `log_index`, applying the catalog
/// entries, the removal of the LSM copies and `extra` (the caller's own operations, such as
/// system keys) as one engine batch.
///
/// An instrument whose day was converted before gets its rows that arrived since (late rows)
/// as the partition's next part file; one whose partition retention removed is left alone.
pub fn convert_day(
    engine: &Engine,
    stream: Stream,
    day: u32,
    log_index: u64,
    extra: WriteBatch,
) -> Result<Conversion> {
    let _olap = super::lock(engine);
    let span = tracing::info_span!("olap_convert", stream = stream.name(), day, log_index);
    let _enter = span.enter();
    let entries = catalog::for_day(engine, stream, day)?;
    let mut report = Conversion::default();
    let mut batch = WriteBatch::new();
    let instruments = instruments(engine, stream)?;
    let parts_of = |instrument: &str| -> Vec<&CatalogEntry> {
        entries
            .iter()
            .filter(|e| e.instrument == instrument)
            .collect()
    };
    let last_conversion = |parts: &[&CatalogEntry]| parts.iter().map(|e| e.converted_at).max();
    // The journal is read only from the oldest last conversion among the partitions with rows
    // to convert: a late-row conversion reads back only what came since.
    let mut read_from = None;
    for instrument in &instruments {
        let parts = parts_of(instrument);
        if parts.iter().all(|e| e.is_live()) && has_rows(engine, stream, instrument, day)? {
            let since = last_conversion(&parts).unwrap_or(0);
            read_from = Some(read_from.map_or(since, |r: u64| r.min(since)));
        }
    }
    let mut day_origins = match read_from {
        Some(since) => DayOrigins::read(engine, stream, day, since)?,
        None => DayOrigins::default(),
    };
    let mut superseded = Vec::new();
    for instrument in instruments {
        let parts = parts_of(&instrument);
        if parts.iter().any(|e| !e.is_live()) {
            report.already_converted += 1;
            continue;
        }
        // Parts are numbered from 0 and never deleted alone, so the count is the next number.
        let part = parts.len() as u32;
        let origins = Origins {
            day: &mut day_origins,
            since: last_conversion(&parts).unwrap_or(0),
            superseded: &mut superseded,
        };
        let (encoded, known) =
            encode_day(engine, stream, (day, &instrument, part), &parts, origins)?;
        report.duplicates_dropped += known.len() as u64;
        for k in known {
            batch.delete(k);
        }
        let Some(encoded) = encoded else {
            if part > 0 {
                report.already_converted += 1;
            }
            continue;
        };
        let entry = write_part(engine, stream, day, &instrument, part, &encoded, log_index)?;
        catalog::put(&mut batch, &entry);
        origin::put_span(&mut batch, &entry, &encoded.origins);
        for k in encoded.keys {
            batch.delete(k);
        }
        report.rows += entry.rows;
        report.bytes += entry.bytes;
        if part > 0 {
            report.late_rows += entry.rows;
        }
        report.partitions.push(entry);
    }
    for p in superseded {
        origin::put_superseded(&mut batch, p);
    }
    for op in extra.ops() {
        match op {
            qastore_lsm::BatchOp::Put { key, value } => batch.put(key.clone(), value.clone()),
            qastore_lsm::BatchOp::Delete { key } => batch.delete(key.clone()),
        };
    }
    engine.apply(&batch, log_index)?;
    tracing::info!(
        partitions = report.partitions.len(),
        rows = report.rows,
        late_rows = report.late_rows,
        duplicates_dropped = report.duplicates_dropped,
        bytes = report.bytes,
        "trading day converted to Parquet"
    );
    Ok(report)
}
