//! The audit trail as a node keeps it: every operator action it serves goes into the log (from
//! a follower, through the leader's `Admin.RecordAudit`), so every node holds the same trail;
//! the calls it refuses stay on the node, in memory, so that a flood of refused calls can
//! neither fill the log nor slow the cluster.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use qastore_exchange::audit::{self, AuditEntry, AuditFilter, Audited};
use qastore_exchange::{Command, Response, SystemCommand};
use qastore_proto::v1 as pb;
use tonic::{Request, Status};

use super::table::now_ns;
use super::Caller;
use crate::error::ApiError;
use crate::forward::{self, Route};
use crate::node::Node;
use crate::replicated::request;

/// How many refused calls a node keeps.
pub const REFUSED_KEPT: usize = 1000;
/// The most entries one `ListAudit` answers.
pub const MAX_LISTED: usize = 10_000;
/// How long recording an action in the trail may take before the caller gets its answer.
const RECORD_TIMEOUT: Duration = Duration::from_secs(3);

/// The calls a node refused, the latest [`REFUSED_KEPT`].
#[derive(Debug, Default)]
pub struct RefusedCalls {
    calls: Mutex<VecDeque<pb::AuditEntry>>,
}

impl RefusedCalls {
    /// Keeps a refused call (dropping the oldest beyond [`REFUSED_KEPT`]).
    pub fn note(&self, entry: pb::AuditEntry) {
        let mut calls = self.calls.lock();
        if calls.len() == REFUSED_KEPT {
            calls.pop_front();
        }
        calls.push_back(entry);
    }

    /// The latest `limit` refused calls `filter` admits, oldest first.
    fn list(&self, filter: &AuditFilter, limit: usize) -> Vec<pb::AuditEntry> {
        let calls = self.calls.lock();
        let mut out: Vec<pb::AuditEntry> = calls
            .iter()
            .rev()
            .filter(|e| filter.admits(&from_pb(e)))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

fn from_pb(e: &pb::AuditEntry) -> AuditEntry {
    AuditEntry {
        at_ns: e.at_ns,
        who: e.who.clone(),
        from: e.remote.clone(),
        node_id: e.node_id,
        action: e.action.clone(),
        detail: e.detail.clone(),
        result: e.result.clone(),
    }
}

fn to_pb(a: Audited) -> pb::AuditEntry {
    pb::AuditEntry {
        index: a.index,
        at_ns: a.entry.at_ns,
        who: a.entry.who,
        remote: a.entry.from,
        node_id: a.entry.node_id,
        action: a.entry.action,
        detail: a.entry.detail,
        result: a.entry.result,
    }
}

/// How a call ended, as the trail says it.
pub fn outcome<T>(result: &Result<T, Status>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(s) => status_text(s),
    }
}

/// A status as the trail writes it: `PERMISSION_DENIED: <message>`.
pub fn status_text(s: &Status) -> String {
    let code = format!("{:?}", s.code());
    // `PermissionDenied` -> `PERMISSION_DENIED`, as gRPC names codes.
    let mut name = String::new();
    for (i, ch) in code.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(ch.to_ascii_uppercase());
    }
    format!("{name}: {}", s.message())
}

/// An entry for an action served here now.
pub fn entry(
    node: &Node,
    caller: Option<&Caller>,
    action: &str,
    detail: String,
    result: String,
) -> pb::AuditEntry {
    pb::AuditEntry {
        index: 0,
        at_ns: now_ns(),
        who: caller.map_or_else(|| "an unknown caller".into(), Caller::who),
        remote: caller.map(Caller::from).unwrap_or_default(),
        node_id: node.raft.id(),
        action: action.to_owned(),
        detail,
        result,
    }
}

/// Puts `entry` into the replicated trail: proposed here on the leader, handed to the leader
/// from a follower. A trail that cannot be written (no leader) is logged and counted; the
/// action itself has happened either way.
pub async fn record(node: &Node, entry: pb::AuditEntry) {
    let action = entry.action.clone();
    let recorded = tokio::time::timeout(RECORD_TIMEOUT, append(node, entry)).await;
    let error = match recorded {
        Ok(Ok(_)) => return,
        Ok(Err(s)) => s.message().to_owned(),
        Err(_) => "no answer in time".into(),
    };
    metrics::counter!("qastore_audit_unrecorded_total").increment(1);
    tracing::error!(action = %action, error = %error, "an operator action is missing from the audit trail");
}

async fn append(node: &Node, entry: pb::AuditEntry) -> Result<u64, Status> {
    match forward::route(node, false) {
        Ok(Route::Forward(leader)) => {
            let mut admin = node.peers.admin(&leader)?;
            let mut req = Request::new(entry);
            req.set_timeout(RECORD_TIMEOUT);
            Ok(admin.record_audit(req).await?.into_inner().index)
        }
        // A node that does not forward writes still hands the leader its audit entries.
        Err(_) if !node.raft.is_leader() => match node.raft.leader() {
            Some((_, peer)) => {
                let mut admin = node.peers.admin(&peer.api_addr)?;
                Ok(admin.record_audit(entry).await?.into_inner().index)
            }
            None => Err(ApiError::NoLeader("no leader to record the action with".into()).into()),
        },
        _ => propose(node, entry).await,
    }
}

/// `Admin.RecordAudit` on the leader (called by nodes only, see the access policy).
pub async fn propose(node: &Node, entry: pb::AuditEntry) -> Result<u64, Status> {
    let cmd = SystemCommand::Audit(Box::new(from_pb(&entry)));
    let (_, response) = node
        .raft
        .propose(request(&Command::System(cmd)), node.write_timeout())
        .await
        .map_err(ApiError::from)?;
    match response {
        Response::Audited { index } => Ok(index),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}")).into()),
    }
}

/// `Admin.ListAudit`: the replicated trail as this node applied it, or the calls it refused.
pub async fn list(node: &Node, req: pb::ListAuditRequest) -> Result<pb::ListAuditResponse, Status> {
    let limit = match req.limit {
        0 => 100,
        n if n as usize > MAX_LISTED => {
            return Err(ApiError::InvalidArgument(format!(
                "field limit: at most {MAX_LISTED}, not {n}"
            ))
            .into())
        }
        n => n as usize,
    };
    let text = |s: String| (!s.is_empty()).then_some(s);
    let filter = AuditFilter {
        who: text(req.who),
        action: text(req.action),
        since_ns: (req.since_ns != 0).then_some(req.since_ns),
        until_ns: None,
        failed_only: req.failed_only,
    };
    if req.refused {
        return Ok(pb::ListAuditResponse {
            entries: node.refused.list(&filter, limit),
        });
    }
    let engine = node.raft.engine().map_err(ApiError::from)?;
    let listed = tokio::task::spawn_blocking(move || audit::list(&engine, &filter, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)?;
    Ok(pb::ListAuditResponse {
        entries: listed.into_iter().map(to_pb).collect(),
    })
}
