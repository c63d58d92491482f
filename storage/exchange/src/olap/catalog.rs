//! The catalog of converted partitions, kept in the engine (so it is replicated, hashed and
//! carried by checkpoints like any other state).
//!
//! One entry per part file of a (stream, trading day, instrument) partition, stored twice so both
//! lookups are one range. Part 0 is the day's conversion; each later part holds rows that
//! arrived after the part before it was written (late rows), so a partition's files together
//! hold the whole day. Part 0 keeps the key it has always had; later parts add their number:
//!
//! ```text
//! s olap\0  <stream> <day u32 BE> <instrument> [\0 <part u32 BE>]     by day
//! s olapi\0 <stream> <instrument> \0 <day u32 BE> [<part u32 BE>]     by instrument
//! ```
//!
//! Ids never hold a NUL, so every part of a partition sorts right after its part 0.
//!
//! Entries are never deleted: retention marks them removed (with the log index), which is how a
//! node knows when the files may go (see `retain.rs`).

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::Result;
use crate::keys::{KeyBuf, Stream, SYSTEM};
use crate::query::decode_at;
use crate::record::encode;
use qastore_lsm::Engine;
use qastore_lsm::WriteBatch;

/// One converted partition.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// `b'k'` for ticks, `b't'` for trades.
    pub stream: u8,
    /// The trading day (`YYYYMMDD`).
    pub trading_day: u32,
    /// The instrument.
    pub instrument: String,
    /// The Parquet file, relative to the engine directory.
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
    /// Earliest event time in the file.
    pub min_time: i64,
    /// Latest event time in the file.
    pub max_time: i64,
    /// File size.
    pub bytes: u64,
    /// CRC32 of the whole file (checked whenever it is read).
    pub crc32: u32,
    /// The log index of the conversion.
    pub converted_at: u64,
    /// The log index of the retention that removed it, if one did.
    pub removed_at: Option<u64>,
}

impl CatalogEntry {
    /// The entry's stream.
    pub fn stream(&self) -> Stream {
        if self.stream == Stream::Trades.byte() {
            Stream::Trades
        } else {
            Stream::Ticks
        }
    }

    /// Whether it still serves reads.
    pub fn is_live(&self) -> bool {
        self.removed_at.is_none()
    }

    /// Its directory, relative to the engine directory.
    pub fn dir(&self) -> String {
        partition_dir(self.stream(), self.trading_day, &self.instrument)
    }

    /// Its part number within the partition (from its file name, `part-<n>.parquet`).
    pub fn part(&self) -> u32 {
        self.file
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_prefix("part-"))
            .and_then(|name| name.strip_suffix(".parquet"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// The catalog key by day of a partition's part 0.
pub fn key_by_day(stream: Stream, day: u32, instrument: &str) -> Vec<u8> {
    key_of_part_by_day(stream, day, instrument, 0)
}

/// The catalog key by instrument of a partition's part 0.
pub fn key_by_instrument(stream: Stream, instrument: &str, day: u32) -> Vec<u8> {
    key_of_part_by_instrument(stream, instrument, day, 0)
}

/// The catalog key by day of one part of a partition.
pub fn key_of_part_by_day(stream: Stream, day: u32, instrument: &str, part: u32) -> Vec<u8> {
    let key = KeyBuf::new(SYSTEM).id("olap").byte(stream.byte()).u32(day);
    match part {
        0 => key.last_id(instrument).build(),
        n => key.id(instrument).u32(n).build(),
    }
}

/// The catalog key by instrument of one part of a partition.
pub fn key_of_part_by_instrument(stream: Stream, instrument: &str, day: u32, part: u32) -> Vec<u8> {
    let key = KeyBuf::new(SYSTEM)
        .id("olapi")
        .byte(stream.byte())
        .id(instrument)
        .u32(day);
    match part {
        0 => key.build(),
        n => key.u32(n).build(),
    }
}

/// Adds `entry` (both of its keys) to `batch`.
pub fn put(batch: &mut WriteBatch, entry: &CatalogEntry) {
    let value = encode(entry);
    let (stream, day, part) = (entry.stream(), entry.trading_day, entry.part());
    batch.put(
        key_of_part_by_day(stream, day, &entry.instrument, part),
        value.clone(),
    );
    batch.put(
        key_of_part_by_instrument(stream, &entry.instrument, day, part),
        value,
    );
}

fn scan(engine: &Engine, prefix: Vec<u8>) -> Result<Vec<CatalogEntry>> {
    engine
        .scan_prefix(&prefix)
        .map(|row| {
            let (k, v) = row?;
            decode_at(&k, &v)
        })
        .collect()
}

/// Every entry (live or removed) of one instrument's stream, oldest day first.
pub fn for_instrument(
    engine: &Engine,
    stream: Stream,
    instrument: &str,
) -> Result<Vec<CatalogEntry>> {
    let prefix = KeyBuf::new(SYSTEM)
        .id("olapi")
        .byte(stream.byte())
        .id(instrument)
        .build();
    scan(engine, prefix)
}

/// Every entry (live or removed) of one trading day of a stream.
pub fn for_day(engine: &Engine, stream: Stream, day: u32) -> Result<Vec<CatalogEntry>> {
    let prefix = KeyBuf::new(SYSTEM)
        .id("olap")
        .byte(stream.byte())
        .u32(day)
        .build();
    scan(engine, prefix)
}

/// Every entry of a stream, by day.
pub fn all(engine: &Engine, stream: Stream) -> Result<Vec<CatalogEntry>> {
    scan(
        engine,
        KeyBuf::new(SYSTEM).id("olap").byte(stream.byte()).build(),
    )
}

/// Escapes an id for use as a path component: bytes outside `[A-Za-z0-9._-]` become `%XX`, and
/// so does a leading dot (no id can become `.`, `..` or a hidden file).
pub fn escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for (i, b) in id.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The directory of a partition, relative to the engine directory.
pub fn partition_dir(stream: Stream, day: u32, instrument: &str) -> String {
    format!(
        "{}/{}/trading_day={day}/instrument={}",
        super::OLAP_DIR,
        stream.name(),
        escape(instrument)
    )
}

/// The first Parquet file of a partition, relative to the engine directory.
pub fn partition_file(stream: Stream, day: u32, instrument: &str) -> String {
    part_file(stream, day, instrument, 0)
}

/// Part `part` of a partition, relative to the engine directory.
pub fn part_file(stream: Stream, day: u32, instrument: &str, part: u32) -> String {
    format!(
        "{}/part-{part}.parquet",
        partition_dir(stream, day, instrument)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_path_components() {
        assert_eq!(escape("IF2412"), "IF2412");
        assert_eq!(escape("SHFE.cu2501"), "SHFE.cu2501");
        assert_eq!(escape("../etc"), "%2E.%2Fetc");
        assert_eq!(escape("a b/c"), "a%20b%2Fc");
        assert_eq!(
            partition_file(Stream::Ticks, 20241202, "IF2412"),
            "olap/ticks/trading_day=20241202/instrument=IF2412/part-0.parquet"
        );
        let mut entry = CatalogEntry {
            stream: b'k',
            trading_day: 20241202,
            instrument: "IF2412".into(),
            file: part_file(Stream::Ticks, 20241202, "IF2412", 12),
            rows: 1,
            min_time: 0,
            max_time: 0,
            bytes: 1,
            crc32: 0,
            converted_at: 1,
            removed_at: None,
        };
        assert_eq!(entry.part(), 12);
        entry.file = partition_file(Stream::Ticks, 20241202, "IF2412");
        assert_eq!(entry.part(), 0);
        assert!(
            key_by_day(Stream::Ticks, 20241202, "b") < key_by_day(Stream::Ticks, 20241203, "a")
        );
        assert!(
            key_by_instrument(Stream::Ticks, "a", 20241203)
                < key_by_instrument(Stream::Ticks, "b", 1)
        );
        // Later parts sort right after their part 0, before the next instrument or day.
        let by_day = |inst, part| key_of_part_by_day(Stream::Ticks, 20241202, inst, part);
        assert!(by_day("a", 0) < by_day("a", 1));
        assert!(by_day("a", 1) < by_day("a", 2));
        assert!(by_day("a", 9) < by_day("a.", 0));
        assert!(by_day("a", 9) < by_day("a0", 0));
        let by_inst = |day, part| key_of_part_by_instrument(Stream::Ticks, "a", day, part);
        assert!(by_inst(20241202, 0) < by_inst(20241202, 1));
        assert!(by_inst(20241202, 7) < by_inst(20241203, 0));
        assert!(by_inst(20241202, 7) < key_by_instrument(Stream::Ticks, "a.", 0));
    }
}
