//! The audit trail of operators' actions: each one an entry of the log, so every node holds
//! the same trail, in log order.
//!
//! ```text
//! s audit\0 <log index, 8 bytes big-endian>     who did what, from where, when, and the result
//! ```

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::Result;
use crate::keys::{KeyBuf, SYSTEM};
use crate::query::decode_at;
use crate::record::encode;
use qastore_lsm::{Engine, WriteBatch};

/// The longest text of any field, in bytes; longer text is cut (at a character boundary).
pub const MAX_FIELD_BYTES: usize = 1024;

/// One action as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened (epoch nanoseconds, the clock of the node that served it).
    pub at_ns: i64,
    /// Who did it (the caller's identity).
    pub who: String,
    /// From where (the caller's address).
    pub from: String,
    /// The node that served it.
    pub node_id: u64,
    /// What was asked (the method, `Admin/TransferLeadership`).
    pub action: String,
    /// The request's arguments, in words.
    pub detail: String,
    /// `ok`, or the error the caller got.
    pub result: String,
}

/// An entry as listed: where in the log it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited {
    /// The log index of the entry.
    pub index: u64,
    /// The entry.
    pub entry: AuditEntry,
}

/// Where the trail lives in the key space (every entry's key starts with it).
pub fn key_prefix() -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("audit").build()
}

fn prefix() -> Vec<u8> {
    key_prefix()
}

fn key(index: u64) -> Vec<u8> {
    let mut k = prefix();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Adds `entry`, recorded at log index `index`, to `sys` (its text fields cut to
/// [`MAX_FIELD_BYTES`]).
pub(crate) fn put(entry: &AuditEntry, index: u64, sys: &mut WriteBatch) {
    let stored = AuditEntry {
        at_ns: entry.at_ns,
        who: cut(&entry.who),
        from: cut(&entry.from),
        node_id: entry.node_id,
        action: cut(&entry.action),
        detail: cut(&entry.detail),
        result: cut(&entry.result),
    };
    sys.put(key(index), encode(&stored));
}

/// The most expired entries one new entry drops: the rest go with the entries after it, so
/// recording stays cheap after retention is first turned on over a long trail.
const MAX_DROPPED_PER_ENTRY: usize = 1000;

/// Adds to `sys` the deletion of the oldest entries recorded before `cutoff_ns` (at most
/// [`MAX_DROPPED_PER_ENTRY`]); returns how many. The trail is in log order, which is time order
/// to within the nodes' clock skew, so it stops at the first entry that is recent enough.
pub(crate) fn drop_expired(engine: &Engine, cutoff_ns: i64, sys: &mut WriteBatch) -> Result<usize> {
    let mut dropped = 0;
    for row in engine.scan_prefix(&prefix()) {
        let (k, v) = row?;
        let entry: AuditEntry = decode_at(&k, &v)?;
        if entry.at_ns >= cutoff_ns || dropped == MAX_DROPPED_PER_ENTRY {
            break;
        }
        sys.delete(k);
        dropped += 1;
    }
    Ok(dropped)
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries whose `who` contains this.
    pub who: Option<String>,
    /// Only entries whose `action` contains this.
    pub action: Option<String>,
    /// Only entries at or after this time (epoch nanoseconds).
    pub since_ns: Option<i64>,
    /// Only entries before this time (epoch nanoseconds).
    pub until_ns: Option<i64>,
    /// Only refused or failed actions.
    pub failed_only: bool,
}

impl AuditFilter {
    /// Whether `e` is one to list.
    pub fn admits(&self, e: &AuditEntry) -> bool {
        self.who.as_ref().is_none_or(|w| e.who.contains(w.as_str()))
            && self
                .action
                .as_ref()
                .is_none_or(|a| e.action.contains(a.as_str()))
            && self.since_ns.is_none_or(|s| e.at_ns >= s)
            && self.until_ns.is_none_or(|u| e.at_ns < u)
            && (!self.failed_only || e.result != "ok")
    }
}

/// The last `limit` entries `filter` admits, oldest first.
pub fn list(engine: &Engine, filter: &AuditFilter, limit: usize) -> Result<Vec<Audited>> {
    let prefix = prefix();
    let mut out = std::collections::VecDeque::new();
    for row in engine.scan_prefix(&prefix) {
        let (k, v) = row?;
        let entry: AuditEntry = decode_at(&k, &v)?;
        if !filter.admits(&entry) {
            continue;
        }
        let index = k[prefix.len()..]
            .try_into()
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        out.push_back(Audited { index, entry });
        if out.len() > limit {
            out.pop_front();
        }
    }
    Ok(out.into())
}
