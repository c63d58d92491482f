//! The membership watch: a node that has heard nothing from a leader for longer than the
//! longest election timeout asks the leader it knows (or, knowing none, every member it
//! knows) whether it is still listed, and records a leader's word that it is not (see
//! [`crate::membership`]).

use std::sync::Arc;
use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_raft::{PeerNode, Role};
use tonic::Request;

use crate::membership::{Membership, Removal};
use crate::node::Node;

/// How often a silent node asks whether it is still a member.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long one question to another node may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Checks, until `stop`, whether a node that hears nothing from a leader was removed.
pub fn spawn(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
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
    if s.role == Role::Leader || node.membership() != Membership::Member {
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
