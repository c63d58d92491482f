//! Durable consumers: named cursors into the event journal, kept in the system keyspace and
//! changed only through the log, so every replica holds the same cursor at the same index and
//! a consumer resumes alike on any node.
//!
//! ```text
//! s consumer\0 <name>     the consumer's cursor, creation time and whether it expired
//! ```
//!
//! A cursor is the last acknowledged position: a resumed stream starts right after it. It only
//! moves forward. Journal retention keeps what a live consumer has not acknowledged, down to a
//! hard limit of held entries ([`hold_journal`]); a consumer retention had to pass is marked
//! expired and can no longer resume or be acknowledged.

use rkyv::{Archive, Deserialize, Serialize};

use crate::command::Response;
use crate::error::Result;
use crate::feed::Position;
use crate::keys::{KeyBuf, SYSTEM};
use crate::query::decode_at;
use crate::record::encode;
use qastore_lsm::{Engine, WriteBatch};

/// The longest consumer name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// A durable consumer as the cluster holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// Its name (see [`check_name`]).
    pub name: String,
    /// The last acknowledged position: a resumed stream starts right after it.
    pub cursor: Position,
    /// When it was created (epoch nanoseconds, the proposing leader's clock).
    pub created_at_ns: i64,
    /// Retention dropped events it had not acknowledged: it can no longer resume.
    pub expired: bool,
}

/// The stored form of a consumer (its name is in the key).
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
struct StoredConsumer {
    cursor: Position,
    created_at_ns: i64,
    expired: bool,
}

/// A consumer name that is not acceptable, with the request field that carried it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct InvalidConsumer {
    /// The request field (`consumer`, or `name` where the request calls it so).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidConsumer {
    /// The same error, naming the request field `field` instead.
    pub fn in_field(self, field: &'static str) -> InvalidConsumer {
        InvalidConsumer { field, ..self }
    }
}

/// Checks a consumer name: 1 to [`MAX_NAME_BYTES`] bytes of ASCII letters, digits, `-`, `_`
/// and `.`. The error names the field `consumer` (see [`InvalidConsumer::in_field`]).
pub fn check_name(name: &str) -> std::result::Result<(), InvalidConsumer> {
    let bad = |reason: String| {
        Err(InvalidConsumer {
            field: "consumer",
            reason,
        })
    };
    if name.is_empty() {
        return bad("a consumer name is required".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return bad(format!(
            "a consumer name is at most {MAX_NAME_BYTES} bytes, not {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(format!(
            "{c:?} is not allowed in a consumer name (letters, digits, '-', '_' and '.' are)"
        ));
    }
    Ok(())
}

fn prefix() -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("consumer").build()
}

fn key(name: &str) -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("consumer").last_id(name).build()
}

/// Adds `consumer`, as it now stands, to `batch`.
pub fn put(batch: &mut WriteBatch, consumer: &ConsumerState) {
    let stored = StoredConsumer {
        cursor: consumer.cursor,
        created_at_ns: consumer.created_at_ns,
        expired: consumer.expired,
    };
    batch.put(key(&consumer.name), encode(&stored));
}

fn from_stored(name: String, s: StoredConsumer) -> ConsumerState {
    ConsumerState {
        name,
        cursor: s.cursor,
        created_at_ns: s.created_at_ns,
        expired: s.expired,
    }
}

/// The consumer called `name`, if there is one.
pub fn get(engine: &Engine, name: &str) -> Result<Option<ConsumerState>> {
    let key = key(name);
    match engine.get(&key)? {
        Some(v) => Ok(Some(from_stored(name.to_owned(), decode_at(&key, &v)?))),
        None => Ok(None),
    }
}

/// Every consumer, by name.
pub fn list(engine: &Engine) -> Result<Vec<ConsumerState>> {
    let prefix = prefix();
    engine
        .scan_prefix(&prefix)
        .map(|row| {
            let (k, v) = row?;
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            Ok(from_stored(name, decode_at(&k, &v)?))
        })
        .collect()
}

/// What journal retention may drop given the consumers, and the consumers it must expire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalHold {
    /// The journal cut-off to apply: entries of log indexes before it go.
    pub cutoff: Option<u64>,
    /// Live consumers that still need entries below `cutoff`, marked expired.
    pub expired: Vec<ConsumerState>,
}

/// The first log index whose events a consumer still needs: everything after its cursor.
fn first_needed(cursor: Position) -> u64 {
    cursor.successor().index
}

/// The lowest cut-off a retention run at log index `index` keeps to, holding no more than
/// `max_held` entries (the last applied one included) for consumers.
pub fn hard_cutoff(index: u64, max_held: u64) -> u64 {
    (index + 1).saturating_sub(max_held)
}

/// Lowers the journal cut-off `requested` so that no live consumer loses an event it has not
/// acknowledged, but never below `hard_cutoff`: a consumer that would need the journal kept
/// lower is returned expired (and the cut-off is not lowered for it). Nothing is written.
pub fn hold_journal(
    engine: &Engine,
    requested: Option<u64>,
    hard_cutoff: u64,
) -> Result<JournalHold> {
    let Some(requested) = requested else {
        return Ok(JournalHold::default());
    };
    let live: Vec<ConsumerState> = list(engine)?.into_iter().filter(|c| !c.expired).collect();
    let floor = requested.min(hard_cutoff);
    let cutoff = live
        .iter()
        .map(|c| first_needed(c.cursor))
        .fold(requested, u64::min)
        .max(floor);
    let expired = live
        .into_iter()
        .filter(|c| first_needed(c.cursor) < cutoff)
        .map(|c| ConsumerState { expired: true, ..c })
        .collect();
    Ok(JournalHold {
        cutoff: Some(cutoff),
        expired,
    })
}

/// Applies the creation of consumer `name` at log index `index`, adding its write to `sys`: a
/// consumer that exists is answered as it is, unchanged.
pub(crate) fn create(
    engine: &Engine,
    index: u64,
    name: &str,
    cursor: Position,
    created_at_ns: i64,
    sys: &mut WriteBatch,
) -> Result<Response> {
    if let Err(e) = check_name(name) {
        return Ok(refused(e.in_field("name")));
    }
    if let Some(existing) = get(engine, name)? {
        return Ok(Response::Consumer(existing));
    }
    if cursor.index >= index {
        return Ok(Response::Refused {
            reason: format!("field cursor: {cursor} is beyond the log (at {index})"),
        });
    }
    let consumer = ConsumerState {
        name: name.to_owned(),
        cursor,
        created_at_ns,
        expired: false,
    };
    put(sys, &consumer);
    Ok(Response::Consumer(consumer))
}

/// Applies an acknowledgement of every event of `name` up to `position` at log index `index`,
/// adding its write to `sys`. The cursor only moves forward; an unknown or expired consumer,
/// or a position not yet in the log, is refused.
pub(crate) fn ack(
    engine: &Engine,
    index: u64,
    name: &str,
    position: Position,
    sys: &mut WriteBatch,
) -> Result<Response> {
    let Some(mut consumer) = get(engine, name)? else {
        return Ok(Response::UnknownConsumer { name: name.into() });
    };
    if consumer.expired {
        return Ok(Response::Refused {
            reason: format!(
                "field consumer: {name} expired (retention dropped events it had not \
                 acknowledged); delete it and create it again"
            ),
        });
    }
    if position.index >= index {
        return Ok(Response::Refused {
            reason: format!("field position: {position} is beyond the log (at {index})"),
        });
    }
    if position > consumer.cursor {
        consumer.cursor = position;
        put(sys, &consumer);
    }
    Ok(Response::Consumer(consumer))
}

/// Applies the deletion of consumer `name`, adding it to `sys`.
pub(crate) fn delete(engine: &Engine, name: &str, sys: &mut WriteBatch) -> Result<Response> {
    let existed = get(engine, name)?.is_some();
    if existed {
        sys.delete(key(name));
    }
    Ok(Response::ConsumerDeleted { existed })
}

fn refused(e: InvalidConsumer) -> Response {
    Response::Refused {
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_lsm::vfs::OsVfs;
    use qastore_lsm::EngineConfig;

    fn engine(dir: &std::path::Path) -> Engine {
        Engine::open(OsVfs::shared(), dir.join("db"), EngineConfig::default()).unwrap()
    }

    fn consumer(name: &str, index: u64, ordinal: u32) -> ConsumerState {
        ConsumerState {
            name: name.into(),
            cursor: Position::new(index, ordinal),
            created_at_ns: 5,
            expired: false,
        }
    }

    fn store(engine: &Engine, index: u64, consumers: &[ConsumerState]) {
        let mut b = WriteBatch::new();
        for c in consumers {
            put(&mut b, c);
        }
        engine.apply(&b, index).unwrap();
    }

    #[test]
    fn names_of_letters_digits_and_dots_dashes_underscores_are_accepted() {
        for ok in ["a", "risk-engine_2.eu", &"x".repeat(MAX_NAME_BYTES)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn empty_long_and_odd_names_are_refused_naming_the_field() {
        for bad in [
            "",
            &"x".repeat(MAX_NAME_BYTES + 1),
            "a b",
            "a/b",
            "tab\t",
            "nul\0",
            "é",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.to_string().starts_with("field consumer: "), "{e}");
            assert!(e.in_field("name").to_string().starts_with("field name: "));
        }
    }

    #[test]
    fn consumers_read_back_by_name_and_listed_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let e = engine(tmp.path());
        let (b, a) = (consumer("b", 7, 2), consumer("a", 3, 0));
        store(&e, 1, &[b.clone(), a.clone()]);
        assert_eq!(get(&e, "a").unwrap(), Some(a.clone()));
        assert_eq!(get(&e, "c").unwrap(), None);
        assert_eq!(list(&e).unwrap(), vec![a, b]);
    }

    #[test]
    fn retention_without_consumers_keeps_its_cut_off() {
        let tmp = tempfile::tempdir().unwrap();
        let e = engine(tmp.path());
        let hold = hold_journal(&e, Some(50), 10).unwrap();
        assert_eq!(hold.cutoff, Some(50));
        assert!(hold.expired.is_empty());
        assert_eq!(hold_journal(&e, None, 10).unwrap(), JournalHold::default());
    }

    #[test]
    fn retention_stops_at_the_lowest_unacknowledged_event_of_live_consumers() {
        let tmp = tempfile::tempdir().unwrap();
        let e = engine(tmp.path());
        let expired = ConsumerState {
            expired: true,
            ..consumer("gone", 2, 0)
        };
        // "slow" still needs 30:5 on; "done" acknowledged all of batch 40.
        store(
            &e,
            1,
            &[
                consumer("slow", 30, 4),
                ConsumerState {
                    cursor: Position::end_of(40),
                    ..consumer("done", 0, 0)
                },
                expired,
            ],
        );
        let hold = hold_journal(&e, Some(100), 10).unwrap();
        assert_eq!(hold.cutoff, Some(30));
        assert!(hold.expired.is_empty());
        // A cut-off below every cursor is kept as asked.
        assert_eq!(hold_journal(&e, Some(20), 10).unwrap().cutoff, Some(20));
    }

    #[test]
    fn a_consumer_behind_the_hard_limit_expires_and_holds_nothing_back() {
        let tmp = tempfile::tempdir().unwrap();
        let e = engine(tmp.path());
        store(&e, 1, &[consumer("slow", 30, 4), consumer("ok", 80, 0)]);
        let hold = hold_journal(&e, Some(100), 60).unwrap();
        assert_eq!(hold.cutoff, Some(60));
        assert_eq!(
            hold.expired,
            vec![ConsumerState {
                expired: true,
                ..consumer("slow", 30, 4)
            }]
        );
    }

    #[test]
    fn the_hard_limit_counts_back_from_the_retention_entry() {
        assert_eq!(hard_cutoff(100, 10), 91);
        assert_eq!(hard_cutoff(5, 10), 0);
    }
}
