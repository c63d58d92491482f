//! The openraft type configuration: what a log entry carries, what applying it answers, how
//! nodes are named and addressed. One configuration serves every application: commands are
//! opaque bytes and answers type-erased.

use std::fmt;

use crate::command::Request;
use crate::reply::Reply;

/// A node's id: unique for the life of the cluster, never reused (a wiped node rejoins under a
/// new id).
pub type NodeId = u64;

/// Where a node is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PeerNode {
    /// Address of its peer (Raft) service, `host:port`.
    pub raft_addr: String,
    /// Address of its client API, `host:port` (reported to clients to find the leader).
    pub api_addr: String,
}

impl PeerNode {
    /// A node reached at `raft_addr`, serving clients at `api_addr`.
    pub fn new(raft_addr: impl Into<String>, api_addr: impl Into<String>) -> Self {
        PeerNode {
            raft_addr: raft_addr.into(),
            api_addr: api_addr.into(),
        }
    }
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    /// QAStore's Raft types: standard Raft leader ids (one leader per term, so a log id is
    /// `(term, index)`, which is what the write-ahead log stores).
    pub TypeConfig:
        D = Request,
        R = Reply,
        NodeId = NodeId,
        Node = PeerNode,
        Term = u64,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        Vote = openraft::impls::Vote<Self::LeaderId>,
);

/// A log entry's id.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// The cluster's membership.
pub type Membership = openraft::Membership<NodeId, PeerNode>;
/// A membership and the log id it was decided at.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// What describes a snapshot.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its description and a handle to its files.
pub type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, crate::snapshot::SnapshotFiles>;
/// The Raft handle of a node.
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;

/// Raft's view of a node, as its metrics report it.
pub type Metrics = openraft::RaftMetrics<TypeConfig>;

/// The leader these metrics name, with its addresses, if it is a member.
pub fn leader_of(m: &Metrics) -> Option<(NodeId, PeerNode)> {
    let leader = m.current_leader?;
    m.membership_config
        .nodes()
        .find(|(id, _)| **id == leader)
        .map(|(_, n)| (leader, n.clone()))
}

/// A log id from its term and index.
pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(term),
        index,
    )
}
