//! Byte encodings of the Raft state we store or send: log entries (as the write-ahead log and
//! the peer network carry them), votes, membership.
//!
//! ```text
//! entry payload  kind u8 (0 blank | 1 normal | 2 membership) | body
//!                normal: the request's archived bytes; membership: a membership
//! membership     configs varint | (voters varint | id varint*)* |
//!                nodes varint | (id varint | raft_addr len+bytes | api_addr len+bytes)*
//! stored memb.   has_log_id u8 | [term u64 | index u64] | membership
//! vote           term u64 | node_id u64 | committed u8
//! ```
//!
//! The log id of an entry is not in its payload: the write-ahead log frames every entry with its
//! term and index (and a checksum).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::EntryPayload;
use qastore_lsm::codec::{put_len_prefixed, put_varint, Reader};
use qastore_lsm::wal::WalEntry;

use crate::command::Request;
use crate::error::CodecError;
use crate::types::{log_id, Entry, LogId, Membership, NodeId, PeerNode, StoredMembership, Vote};

const BLANK: u8 = 0;
const NORMAL: u8 = 1;
const MEMBERSHIP: u8 = 2;

/// Encodes an entry's payload.
pub fn encode_payload(entry: &Entry) -> Bytes {
    match &entry.payload {
        EntryPayload::Blank => Bytes::from_static(&[BLANK]),
        EntryPayload::Normal(req) => {
            let mut out = Vec::with_capacity(1 + req.bytes().len());
            out.push(NORMAL);
            out.extend_from_slice(req.bytes());
            Bytes::from(out)
        }
        EntryPayload::Membership(m) => {
            let mut out = vec![MEMBERSHIP];
            encode_membership_into(m, &mut out);
            Bytes::from(out)
        }
    }
}

/// The write-ahead log entry for `entry`.
pub fn to_wal(entry: &Entry) -> WalEntry {
    let id = entry.log_id();
    WalEntry::new(id.index, id.leader_id.term, encode_payload(entry))
}

/// Decodes an entry from its log id and payload. A normal entry's request is only checked when
/// the state machine decodes it.
pub fn decode_entry(term: u64, index: u64, payload: &Bytes) -> Result<Entry, CodecError> {
    let id = log_id(term, index);
    let Some(&kind) = payload.first() else {
        return Err(CodecError::new("entry", "empty payload"));
    };
    match kind {
        BLANK if payload.len() == 1 => Ok(Entry::new_blank(id)),
        NORMAL => Ok(Entry::new_normal(
            id,
            Request::from_bytes(payload.slice(1..)),
        )),
        MEMBERSHIP => {
            let mut r = Reader::new(&payload[1..]);
            let m = decode_membership_from(&mut r)?;
            if !r.is_empty() {
                return Err(CodecError::new("membership entry", "trailing bytes"));
            }
            Ok(Entry::new_membership(id, m))
        }
        _ => Err(CodecError::new("entry", format!("unknown kind {kind}"))),
    }
}

/// Encodes a whole entry for the network: index u64 | term u64 | payload (what a WAL frame
/// holds).
pub fn encode_entry(entry: &Entry) -> Bytes {
    let id = entry.log_id();
    let payload = encode_payload(entry);
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(&id.index.to_le_bytes());
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

/// Decodes [`encode_entry`].
pub fn decode_entry_bytes(bytes: &Bytes) -> Result<Entry, CodecError> {
    let (Some(index), Some(term)) = (
        qastore_lsm::codec::u64_at(bytes, 0),
        qastore_lsm::codec::u64_at(bytes, 8),
    ) else {
        return Err(CodecError::new("entry", "truncated header"));
    };
    decode_entry(term, index, &bytes.slice(16..))
}

/// Decodes an entry read from the write-ahead log.
pub fn from_wal(e: &WalEntry) -> Result<Entry, CodecError> {
    decode_entry(e.term, e.index, &e.payload)
}

fn encode_membership_into(m: &Membership, out: &mut Vec<u8>) {
    let configs = m.get_joint_config();
    put_varint(out, configs.len() as u64);
    for c in configs {
        put_varint(out, c.len() as u64);
        for id in c {
            put_varint(out, *id);
        }
    }
    let nodes: Vec<(&NodeId, &PeerNode)> = m.nodes().collect();
    put_varint(out, nodes.len() as u64);
    for (id, n) in nodes {
        put_varint(out, *id);
        put_len_prefixed(out, n.raft_addr.as_bytes());
        put_len_prefixed(out, n.api_addr.as_bytes());
    }
}

fn count(r: &mut Reader<'_>, what: &'static str, limit: usize) -> Result<usize, CodecError> {
    let n = r
        .varint()
        .ok_or_else(|| CodecError::new(what, "truncated count"))?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= limit)
        .ok_or_else(|| CodecError::new(what, format!("count {n} is too large")))
}

fn string(r: &mut Reader<'_>, what: &'static str) -> Result<String, CodecError> {
    let b = r
        .len_prefixed()
        .ok_or_else(|| CodecError::new(what, "truncated string"))?;
    String::from_utf8(b.to_vec()).map_err(|_| CodecError::new(what, "not UTF-8"))
}

fn decode_membership_from(r: &mut Reader<'_>) -> Result<Membership, CodecError> {
    // Bounds keep a damaged count from allocating without limit.
    const MAX: usize = 1 << 16;
    let n_configs = count(r, "membership", 8)?;
    let mut configs = Vec::with_capacity(n_configs);
    for _ in 0..n_configs {
        let n = count(r, "membership", MAX)?;
        let mut set = BTreeSet::new();
        for _ in 0..n {
            set.insert(
                r.varint()
                    .ok_or_else(|| CodecError::new("membership", "truncated voter id"))?,
            );
        }
        configs.push(set);
    }
    let n_nodes = count(r, "membership", MAX)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..n_nodes {
        let id = r
            .varint()
            .ok_or_else(|| CodecError::new("membership", "truncated node id"))?;
        let raft_addr = string(r, "membership node address")?;
        let api_addr = string(r, "membership node address")?;
        nodes.insert(
            id,
            PeerNode {
                raft_addr,
                api_addr,
            },
        );
    }
    Membership::new(configs, nodes).map_err(|e| CodecError::new("membership", e.to_string()))
}

fn put_log_id(out: &mut Vec<u8>, id: Option<&LogId>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.leader_id.term.to_le_bytes());
            out.extend_from_slice(&id.index.to_le_bytes());
        }
    }
}

fn get_log_id(r: &mut Reader<'_>, what: &'static str) -> Result<Option<LogId>, CodecError> {
    match r.u8() {
        Some(0) => Ok(None),
        Some(1) => {
            let term = r.u64().ok_or_else(|| CodecError::new(what, "truncated"))?;
            let index = r.u64().ok_or_else(|| CodecError::new(what, "truncated"))?;
            Ok(Some(log_id(term, index)))
        }
        _ => Err(CodecError::new(what, "bad log id flag")),
    }
}

/// Encodes an optional log id.
pub fn encode_log_id(id: Option<&LogId>) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    put_log_id(&mut out, id);
    out
}

/// Decodes [`encode_log_id`].
pub fn decode_log_id(buf: &[u8]) -> Result<Option<LogId>, CodecError> {
    let mut r = Reader::new(buf);
    let id = get_log_id(&mut r, "log id")?;
    if !r.is_empty() {
        return Err(CodecError::new("log id", "trailing bytes"));
    }
    Ok(id)
}

/// Encodes a membership with the log id it was decided at.
pub fn encode_stored_membership(m: &StoredMembership) -> Vec<u8> {
    let mut out = Vec::new();
    put_log_id(&mut out, m.log_id().as_ref());
    encode_membership_into(m.membership(), &mut out);
    out
}

/// Decodes [`encode_stored_membership`].
pub fn decode_stored_membership(buf: &[u8]) -> Result<StoredMembership, CodecError> {
    let mut r = Reader::new(buf);
    let id = get_log_id(&mut r, "stored membership")?;
    let m = decode_membership_from(&mut r)?;
    if !r.is_empty() {
        return Err(CodecError::new("stored membership", "trailing bytes"));
    }
    Ok(StoredMembership::new(id, m))
}

/// Encodes a vote.
pub fn encode_vote(v: &Vote) -> Bytes {
    let mut out = Vec::with_capacity(17);
    out.extend_from_slice(&v.leader_id.term.to_le_bytes());
    out.extend_from_slice(&v.leader_id.voted_for.to_le_bytes());
    out.push(u8::from(v.committed));
    Bytes::from(out)
}

/// Decodes [`encode_vote`].
pub fn decode_vote(buf: &[u8]) -> Result<Vote, CodecError> {
    let mut r = Reader::new(buf);
    let (Some(term), Some(node), Some(committed)) = (r.u64(), r.u64(), r.u8()) else {
        return Err(CodecError::new("vote", "truncated"));
    };
    if !r.is_empty() || committed > 1 {
        return Err(CodecError::new("vote", "malformed"));
    }
    Ok(if committed == 1 {
        Vote::new_committed(term, node)
    } else {
        Vote::new(term, node)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership {
        let nodes = BTreeMap::from([
            (1, PeerNode::new("127.0.0.1:1", "127.0.0.1:11")),
            (2, PeerNode::new("127.0.0.1:2", "127.0.0.1:12")),
            (3, PeerNode::new("127.0.0.1:3", "127.0.0.1:13")),
        ]);
        Membership::new(vec![BTreeSet::from([1, 2]), BTreeSet::from([2, 3])], nodes).unwrap()
    }

    #[test]
    fn entries_round_trip_through_the_wal_form() {
        let req = Request::from_bytes(Bytes::from_static(b"a command"));
        let entries = [
            Entry::new_blank(log_id(3, 7)),
            Entry::new_normal(log_id(3, 8), req),
            Entry::new_membership(log_id(4, 9), membership()),
        ];
        for e in entries {
            assert_eq!(from_wal(&to_wal(&e)).unwrap(), e);
            assert_eq!(decode_entry_bytes(&encode_entry(&e)).unwrap(), e);
        }
        assert!(decode_entry_bytes(&Bytes::from_static(&[1, 2, 3])).is_err());
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let good = encode_payload(&Entry::new_membership(log_id(1, 1), membership()));
        for cut in 0..good.len() {
            let r = decode_entry(1, 1, &good.slice(..cut));
            assert!(r.is_err(), "cut at {cut}");
        }
        assert!(decode_entry(1, 1, &Bytes::from_static(&[9])).is_err());
        assert!(decode_entry(1, 1, &Bytes::from_static(&[0, 0])).is_err());
    }

    #[test]
    fn votes_memberships_and_log_ids_round_trip() {
        for v in [Vote::new(5, 2), Vote::new_committed(6, 3)] {
            assert_eq!(decode_vote(&encode_vote(&v)).unwrap(), v);
        }
        assert!(decode_vote(&[1, 2, 3]).is_err());
        let sm = StoredMembership::new(Some(log_id(2, 10)), membership());
        assert_eq!(
            decode_stored_membership(&encode_stored_membership(&sm)).unwrap(),
            sm
        );
        let empty = StoredMembership::default();
        assert_eq!(
            decode_stored_membership(&encode_stored_membership(&empty)).unwrap(),
            empty
        );
        for id in [None, Some(log_id(1, 2))] {
            assert_eq!(decode_log_id(&encode_log_id(id.as_ref())).unwrap(), id);
        }
    }
}
