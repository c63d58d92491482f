//! Idempotent writes: which (client id, request id) pairs were applied, with what payload and
//! what answer, so that a retried write is applied once and answered as the first time.
//!
//! ```text
//! s dedup\0 <client>\0 <request id>          -> DedupRecord (archived)
//! s dedupx\0 <log index> <client>\0 <request id> -> (empty) the expiry index
//! ```
//!
//! Both are written in the engine batch of the write itself, so a record exists exactly when the
//! write was applied. Records expire by log index, never by clock: [`expire`] runs at apply time
//! on every replica with the same arguments, so all replicas forget the same requests at the
//! same point of the log.

use rkyv::{Archive, Deserialize, Serialize};

use crate::apply::Outcome;
use crate::error::{Error, Result};
use crate::keys::{KeyBuf, SYSTEM};
use crate::query::range::scan_keys;
use crate::record::{decode, encode};
use qastore_lsm::Engine;
use qastore_lsm::WriteBatch;

/// What is remembered of one applied write.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct DedupRecord {
    /// The log index the write was applied at.
    pub log_index: u64,
    /// The hash of its payload (a retry must carry the same).
    pub payload_hash: u64,
    /// The answer it got: one outcome per record.
    pub outcomes: Vec<Outcome>,
}

/// What a write with a given (client id, request id) should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Never seen (or forgotten): apply it.
    New,
    /// Seen with the same payload: answer with the original result, change nothing.
    Retry(DedupRecord),
    /// Seen with another payload: refuse it.
    Reused {
        /// Where the first write with this request id was applied.
        original_index: u64,
    },
}

fn record_key(client: &str, request: u64) -> Vec<u8> {
    KeyBuf::new(SYSTEM)
        .id("dedup")
        .id(client)
        .u64(request)
        .build()
}

fn expiry_prefix() -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("dedupx").build()
}

fn expiry_key(log_index: u64, client: &str, request: u64) -> Vec<u8> {
    KeyBuf::new(SYSTEM)
        .id("dedupx")
        .u64(log_index)
        .id(client)
        .u64(request)
        .build()
}

/// Decodes the (client, request) an expiry key names.
fn parse_expiry(key: &[u8]) -> Option<(u64, &str, u64)> {
    let rest = key.strip_prefix(expiry_prefix().as_slice())?;
    let index = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let rest = &rest[8..];
    let nul = rest.iter().position(|&b| b == 0)?;
    let client = std::str::from_utf8(&rest[..nul]).ok()?;
    let request = u64::from_be_bytes(rest.get(nul + 1..)?.try_into().ok()?);
    Some((index, client, request))
}

/// Looks up (client, request) and says what a write carrying `payload_hash` should do.
pub fn check(engine: &Engine, client: &str, request: u64, payload_hash: u64) -> Result<Check> {
    let key = record_key(client, request);
    let Some(bytes) = engine.get(&key)? else {
        return Ok(Check::New);
    };
    let record: DedupRecord = decode(&bytes)
        .map_err(|e| Error::bad_value(String::from_utf8_lossy(&key).into_owned(), e.to_string()))?;
    if record.payload_hash == payload_hash {
        Ok(Check::Retry(record))
    } else {
        Ok(Check::Reused {
            original_index: record.log_index,
        })
    }
}

/// Adds to `batch` the record of a write applied at `record.log_index`.
pub fn remember(batch: &mut WriteBatch, client: &str, request: u64, record: &DedupRecord) {
    batch.put(record_key(client, request), encode(record));
    batch.put(
        expiry_key(record.log_index, client, request),
        bytes::Bytes::new(),
    );
}

/// Adds to `batch` the removal of up to `max` records of writes applied before `before_index`,
/// oldest first, and returns how many. Bounded so that no apply pays for a long backlog at
/// once; called on every apply, it keeps up with any write rate below `max` per entry.
pub fn expire(
    engine: &Engine,
    before_index: u64,
    max: usize,
    batch: &mut WriteBatch,
) -> Result<usize> {
    let prefix = expiry_prefix();
    let upper = KeyBuf::new(SYSTEM).id("dedupx").u64(before_index).build();
    let mut removed = 0;
    for row in scan_keys(engine, prefix, upper, None).take(max) {
        let (key, _) = row?;
        let Some((_, client, request)) = parse_expiry(&key) else {
            return Err(Error::bad_value(
                String::from_utf8_lossy(&key).into_owned(),
                "malformed expiry key",
            ));
        };
        batch.delete(record_key(client, request));
        batch.delete(key.clone());
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_lsm::vfs::SimVfs;
    use qastore_lsm::EngineConfig;

    fn engine() -> Engine {
        Engine::open(SimVfs::new(1).shared(), "/db", EngineConfig::default()).unwrap()
    }

    fn record(index: u64, hash: u64) -> DedupRecord {
        DedupRecord {
            log_index: index,
            payload_hash: hash,
            outcomes: vec![Outcome::TickRecorded],
        }
    }

    #[test]
    fn a_retry_gets_the_first_answer_and_a_reused_id_is_refused() {
        let e = engine();
        assert_eq!(check(&e, "c1", 7, 99).unwrap(), Check::New);
        let mut b = WriteBatch::new();
        remember(&mut b, "c1", 7, &record(5, 99));
        e.apply(&b, 5).unwrap();
        assert_eq!(check(&e, "c1", 7, 99).unwrap(), Check::Retry(record(5, 99)));
        assert_eq!(
            check(&e, "c1", 7, 100).unwrap(),
            Check::Reused { original_index: 5 }
        );
        assert_eq!(check(&e, "c1", 8, 99).unwrap(), Check::New);
        assert_eq!(check(&e, "c10", 7, 99).unwrap(), Check::New);
    }

    #[test]
    fn records_expire_by_log_index_oldest_first_and_bounded() {
        let e = engine();
        for i in 1..=10u64 {
            let mut b = WriteBatch::new();
            remember(&mut b, &format!("c{i}"), i, &record(i, i));
            e.apply(&b, i).unwrap();
        }
        let mut b = WriteBatch::new();
        assert_eq!(expire(&e, 6, 3, &mut b).unwrap(), 3);
        e.apply(&b, 11).unwrap();
        for i in 1..=3u64 {
            assert_eq!(check(&e, &format!("c{i}"), i, i).unwrap(), Check::New);
        }
        let mut b = WriteBatch::new();
        assert_eq!(expire(&e, 6, 100, &mut b).unwrap(), 2);
        e.apply(&b, 12).unwrap();
        for i in 4..=5u64 {
            assert_eq!(check(&e, &format!("c{i}"), i, i).unwrap(), Check::New);
        }
        for i in 6..=10u64 {
            assert!(matches!(
                check(&e, &format!("c{i}"), i, i).unwrap(),
                Check::Retry(_)
            ));
        }
        assert_eq!(expire(&e, 6, 100, &mut WriteBatch::new()).unwrap(), 0);
    }
}
