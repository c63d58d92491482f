//! Whether this node is still a member of its cluster, including when the entry that removed
//! it never reached it.
//!
//! A leader stops replicating to a node as soon as a membership without that node takes
//! effect, so a removed node's own log often still lists it (as a learner, after the demotion
//! that precedes a voter's removal). Left alone it would go on serving its frozen state. So a
//! node that has heard nothing from a leader for longer than the longest election timeout asks
//! the leader it knows (or, knowing none, every member it knows) for its status and members: a
//! leader of this node's term or a later one that no longer lists it settles the question.
//! The answer is kept in `<data dir>/REMOVED`, so a restarted removed node refuses to serve
//! from its first request, not only after it has asked again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use qastore_proto::v1 as pb;
use qastore_raft::{PeerNode, Role};
use tonic::Request;

use crate::node::Node;

/// How often a silent node asks whether it is still a member.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long one question to another node may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// What a node is to its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// It is listed in the membership it goes by, and no leader said otherwise.
    Member,
    /// It was removed.
    Removed(Removal),
    /// It has no membership yet: it waits to be added.
    NotAdded,
}

/// How a node learned it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Its own log holds a membership without it.
    InLog,
    /// The leader `leader`, in `term`, no longer lists it.
    ToldBy {
        /// The leader that answered.
        leader: u64,
        /// The leader's term.
        term: u64,
    },
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::InLog => write!(f, "its log holds a membership without it"),
            Removal::ToldBy { leader, term } => {
                write!(
                    f,
                    "the leader, node {leader} (term {term}), no longer lists it"
                )
            }
        }
    }
}

/// The file, in the data directory, that keeps a leader's word across restarts.
pub const REMOVED_FILE: &str = "REMOVED";

/// A leader's word that this node is no longer a member, kept while the node's own membership
/// stays the one it had when told (a newer membership, such as being added back, replaces it).
#[derive(Debug, Default)]
pub struct RemovalNotice {
    told: Mutex<Option<(Option<u64>, Removal)>>,
    file: Option<PathBuf>,
}

impl RemovalNotice {
    /// A notice kept in `<data_dir>/REMOVED`, starting from what an earlier run recorded there.
    /// A damaged file is reported and ignored: the node then asks the leader again.
    pub fn persisted(data_dir: &Path) -> Self {
        let file = data_dir.join(REMOVED_FILE);
        let told = match std::fs::read_to_string(&file) {
            Ok(text) => decode(&text).or_else(|| {
                tracing::warn!(file = %file.display(), "ignoring a damaged removal record");
                None
            }),
            Err(_) => None,
        };
        RemovalNotice {
            told: Mutex::new(told),
            file: Some(file),
        }
    }

    /// Records a leader's word and keeps it on disk (crash-atomically), off the async runtime.
    async fn record_durably(&self, membership_index: Option<u64>, removal: Removal) {
        self.record(membership_index, removal.clone());
        let Some(file) = self.file.clone() else {
            return;
        };
        let text = encode(membership_index, &removal);
        let vfs = qastore_lsm::vfs::OsVfs::shared();
        let written = tokio::task::spawn_blocking(move || {
            qastore_lsm::vfs::write_atomic(vfs.as_ref(), &file, text.as_bytes())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not record the removal on disk"),
            Err(e) => tracing::error!(error = %e, "could not record the removal on disk"),
        }
    }

    /// The removal a leader reported, if the node still goes by the membership at
    /// `membership_index` it had then.
    pub fn current(&self, membership_index: Option<u64>) -> Option<Removal> {
        self.told
            .lock()
            .as_ref()
            .filter(|(at, _)| *at == membership_index)
            .map(|(_, r)| r.clone())
    }

    fn record(&self, membership_index: Option<u64>, removal: Removal) {
        *self.told.lock() = Some((membership_index, removal));
    }
}

/// The removal record's text: a header, the membership index, the leader and term, a CRC.
fn encode(membership_index: Option<u64>, removal: &Removal) -> String {
    let index = membership_index.map_or_else(|| "none".to_string(), |i| i.to_string());
    let (leader, term) = match removal {
        Removal::ToldBy { leader, term } => (*leader, *term),
        Removal::InLog => (0, 0),
    };
    let body =
        format!("qastore-removed 1\nmembership_index {index}\nleader {leader}\nterm {term}\n");
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body}crc32 {crc:08x}\n")
}

fn decode(text: &str) -> Option<(Option<u64>, Removal)> {
    let (body, crc_line) = text.rsplit_once("crc32 ")?;
    let crc = u32::from_str_radix(crc_line.trim_end(), 16).ok()?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != "qastore-removed 1" {
        return None;
    }
    let index = match lines.next()?.strip_prefix("membership_index ")? {
        "none" => None,
        n => Some(n.parse().ok()?),
    };
    let leader = lines.next()?.strip_prefix("leader ")?.parse().ok()?;
    let term = lines.next()?.strip_prefix("term ")?.parse().ok()?;
    Some((index, Removal::ToldBy { leader, term }))
}

/// What `node` is to its cluster now.
pub fn membership(node: &Node) -> Membership {
    let s = node.raft.status();
    let index = node.raft.membership_index();
    if !s.nodes.contains_key(&s.node_id) {
        return match index {
            Some(_) => Membership::Removed(Removal::InLog),
            None => Membership::NotAdded,
        };
    }
    match node.removal.current(index) {
        Some(r) => Membership::Removed(r),
        None => Membership::Member,
    }
}

/// Checks, until `stop`, whether a node that hears nothing from a leader was removed.
pub fn spawn_watch(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            check(&node).await;
        }
    });
}

async fn check(node: &Node) {
    let s = node.raft.status();
    if s.role == Role::Leader || membership(node) != Membership::Member {
        return;
    }
    let limit = Duration::from_millis(node.config.raft.election_timeout_max_ms);
    if node
        .raft
        .leader_contact_age()
        .is_some_and(|age| age <= limit)
    {
        return;
    }
    let index = node.raft.membership_index();
    // The leader it knows first; without one, everyone else it knows of.
    let mut ask: Vec<(u64, PeerNode)> = s
        .leader
        .filter(|l| *l != s.node_id)
        .and_then(|l| s.nodes.get(&l).map(|n| (l, n.clone())))
        .into_iter()
        .collect();
    if ask.is_empty() {
        ask = s
            .nodes
            .iter()
            .filter(|(id, _)| **id != s.node_id)
            .map(|(id, n)| (*id, n.clone()))
            .collect();
    }
    for (id, peer) in ask {
        match leader_without(node, id, &peer, s.node_id).await {
            // A leader of an older term may have been deposed without knowing it, and may
            // never have seen the membership that added this node.
            Ok(Some(term)) if term >= s.term => {
                let removal = Removal::ToldBy { leader: id, term };
                tracing::warn!(
                    node = s.node_id,
                    leader = id,
                    term,
                    "removed from the cluster: the leader no longer lists this node; it refuses \
                     reads and writes from now on (stop it; it never rejoins under this id)"
                );
                node.removal.record_durably(index, removal).await;
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(peer = id, error = %e, "membership check"),
        }
    }
}

/// Asks node `id` whether it leads without listing `me`: its term if so.
async fn leader_without(
    node: &Node,
    id: u64,
    peer: &PeerNode,
    me: u64,
) -> Result<Option<u64>, String> {
    let mut admin = node
        .peers
        .admin(&peer.api_addr)
        .map_err(|e| e.to_string())?;
    let status = ask(admin.get_node_status(request(pb::NodeStatusRequest {}))).await?;
    if status.node_id != id
        || status.cluster_id != node.config.cluster_id
        || status.role != pb::Role::Leader as i32
    {
        return Ok(None);
    }
    let members = ask(admin.members(request(pb::MembersRequest {}))).await?;
    let still_leads = members.leader_id == Some(id);
    let listed = members.members.iter().any(|m| m.node_id == me);
    Ok((still_leads && !listed).then_some(status.term))
}

fn request<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(ASK_TIMEOUT);
    r
}

async fn ask<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(ASK_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
        Err(_) => Err(format!("no answer within {} ms", ASK_TIMEOUT.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::{Removal, RemovalNotice};

    #[test]
    fn a_leaders_word_holds_until_the_membership_changes() {
        let notice = RemovalNotice::default();
        assert_eq!(notice.current(Some(7)), None);
        let told = Removal::ToldBy { leader: 1, term: 3 };
        notice.record(Some(7), told.clone());
        assert_eq!(notice.current(Some(7)), Some(told));
        // Added back: a newer membership lists the node again.
        assert_eq!(notice.current(Some(9)), None);
    }

    #[test]
    fn a_removal_record_reads_back_and_a_damaged_one_is_refused() {
        let told = Removal::ToldBy { leader: 2, term: 5 };
        let text = super::encode(Some(11), &told);
        assert_eq!(super::decode(&text), Some((Some(11), told.clone())));
        assert_eq!(
            super::decode(&super::encode(None, &told)),
            Some((None, told))
        );
        let damaged = text.replace("leader 2", "leader 3");
        assert_eq!(super::decode(&damaged), None);
    }
}
