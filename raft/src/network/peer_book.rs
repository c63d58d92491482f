//! What this node's peer client saw of each peer: append streams opened and failed, and a peer
//! found lacking log entries it had acknowledged.
//!
//! Within one leader's term a follower never drops an entry it acknowledged (it acknowledges
//! only what it flushed, and only another leader's entries can conflict with them). So when it
//! later answers that it lacks an entry at or below what it acknowledged in the same term, its
//! disk went back in time: a data directory restored from an older copy, or a lost write.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use crate::types::NodeId;

/// Counts of what happened on the calls to one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Append streams opened to the peer (replication and heartbeats).
    pub append_streams: u64,
    /// Append streams that failed: the peer unreachable, an answer overdue, a broken stream.
    pub append_failures: u64,
    /// Times the peer's log was found to lack entries it had acknowledged.
    pub lost_entries: u64,
}

#[derive(Debug, Default)]
struct Peer {
    stats: PeerStats,
    /// The highest index the peer acknowledged holding, with the leader term it answered in.
    acked: Option<(u64, u64)>,
}

/// A log the peer had lost: it acknowledged up to `acknowledged`, then lacked `missing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostEntries {
    /// The highest index the peer had acknowledged.
    pub acknowledged: u64,
    /// The index it then answered it does not hold.
    pub missing: u64,
}

/// Every peer's record. Shared by all clients of one node.
#[derive(Debug, Default)]
pub struct PeerBook {
    peers: Mutex<HashMap<NodeId, Peer>>,
}

impl PeerBook {
    /// An append stream to `peer` was opened.
    pub fn opened(&self, peer: NodeId) {
        self.peers
            .lock()
            .entry(peer)
            .or_default()
            .stats
            .append_streams += 1;
    }

    /// An append stream to `peer` failed.
    pub fn failed(&self, peer: NodeId) {
        self.peers
            .lock()
            .entry(peer)
            .or_default()
            .stats
            .append_failures += 1;
    }

    /// `peer` answered a leader of `term` that its log holds `index`.
    pub fn acked(&self, peer: NodeId, term: u64, index: u64) {
        let mut peers = self.peers.lock();
        let p = peers.entry(peer).or_default();
        p.acked = match p.acked {
            Some((t, i)) if t == term => Some((t, i.max(index))),
            Some((t, i)) if t > term => Some((t, i)),
            _ => Some((term, index)),
        };
    }

    /// `peer` answered a leader of `term` that its log lacks `index`: returns what it lost if it
    /// had acknowledged that index in the same term (counted once; the record starts over).
    pub fn lacks(&self, peer: NodeId, term: u64, index: u64) -> Option<LostEntries> {
        let mut peers = self.peers.lock();
        let p = peers.entry(peer).or_default();
        match p.acked {
            Some((t, acknowledged)) if t == term && acknowledged >= index => {
                p.acked = None;
                p.stats.lost_entries += 1;
                Some(LostEntries {
                    acknowledged,
                    missing: index,
                })
            }
            _ => None,
        }
    }

    /// Every peer's counts.
    pub fn stats(&self) -> BTreeMap<NodeId, PeerStats> {
        self.peers
            .lock()
            .iter()
            .map(|(id, p)| (*id, p.stats))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_below_what_was_acknowledged_in_the_term_is_a_loss_counted_once() {
        let b = PeerBook::default();
        b.acked(3, 2, 20);
        b.acked(3, 2, 27);
        b.acked(3, 2, 25);
        assert_eq!(
            b.lacks(3, 2, 27),
            Some(LostEntries {
                acknowledged: 27,
                missing: 27
            })
        );
        // The search that follows probes lower indexes: not counted again.
        assert_eq!(b.lacks(3, 2, 13), None);
        assert_eq!(b.stats()[&3].lost_entries, 1);
    }

    #[test]
    fn a_conflict_above_what_was_acknowledged_or_in_another_term_is_normal() {
        let b = PeerBook::default();
        b.acked(3, 2, 20);
        assert_eq!(b.lacks(3, 2, 21), None);
        // Entries acknowledged to an earlier leader may be replaced by a later one.
        assert_eq!(b.lacks(3, 3, 15), None);
        b.acked(3, 3, 10);
        b.acked(3, 2, 30);
        assert_eq!(b.lacks(3, 3, 11), None);
        assert_eq!(b.stats()[&3].lost_entries, 0);
    }
}
