//! The replicated access table as the node uses it: the roles it gives clients (read by the
//! gate on every call that needs one) and the admin calls that change and list it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use qastore_exchange::access::AccessGrant;
use qastore_exchange::{Command, Response, SystemCommand};
use qastore_proto::v1 as pb;
use qastore_security::names::check_name;
use qastore_security::Role;
use tonic::Status;

use super::roles::{Grant, RoleSource};
use super::scope::Scope;
use super::Caller;
use crate::error::ApiError;
use crate::node::Node;
use crate::replicated::{request, ExchangeNode};

/// The roles the replicated table gives clients, as this node has applied it.
pub struct ReplicatedRoles {
    raft: Arc<ExchangeNode>,
}

impl ReplicatedRoles {
    /// The table of `raft`'s state machine.
    pub fn new(raft: Arc<ExchangeNode>) -> Self {
        ReplicatedRoles { raft }
    }
}

impl RoleSource for ReplicatedRoles {
    fn grant_of(&self, client: &str) -> Option<Grant> {
        let table = self.raft.app().access();
        let grant = table.get(client)?;
        // Names were checked before they entered the log; one this version does not know
        // grants nothing.
        Some(Grant {
            roles: grant.roles.iter().filter_map(|r| r.parse().ok()).collect(),
            scope: Scope {
                users: grant.users.clone(),
                instruments: grant.instruments.clone(),
            },
        })
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn entry_to_pb(client: &str, g: &AccessGrant) -> pb::AccessEntry {
    pb::AccessEntry {
        client: client.to_owned(),
        roles: g.roles.clone(),
        users: g.users.clone(),
        instruments: g.instruments.clone(),
        set_by: g.set_by.clone(),
        set_at_ns: g.set_at_ns,
        index: g.index,
    }
}

fn invalid(message: String) -> Status {
    ApiError::InvalidArgument(message).into()
}

/// Checks a request's client name and roles: the client name as a certificate's, each role
/// one of the four, at most once.
fn check_request(client: &str, roles: &[String]) -> Result<Vec<String>, Status> {
    check_name("client", client).map_err(|e| invalid(format!("field client: {e}")))?;
    let mut out: Vec<Role> = Vec::new();
    for r in roles {
        let role: Role = r.parse().map_err(|_| {
            invalid(format!(
                "field roles: {r:?} is not a role (writer, reader, subscriber or admin)"
            ))
        })?;
        if !out.contains(&role) {
            out.push(role);
        }
    }
    out.sort();
    Ok(out.into_iter().map(|r| r.as_str().to_owned()).collect())
}

/// Checks the users or instruments of a scope: plain names (an instrument may end in `*`).
fn check_scope(field: &str, names: &[String]) -> Result<(), Status> {
    let max = qastore_exchange::access::MAX_SCOPE;
    if names.len() > max {
        return Err(invalid(format!("field {field}: at most {max}")));
    }
    for n in names {
        let body = if field == "instruments" {
            n.strip_suffix('*').unwrap_or(n)
        } else {
            n
        };
        let ok = !body.is_empty()
            && n.len() <= qastore_exchange::access::MAX_SCOPE_BYTES
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(invalid(format!(
                "field {field}: {n:?} is not a name (letters, digits, '-', '_', '.'{})",
                if field == "instruments" {
                    ", and a final '*' for a prefix"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

async fn propose(node: &Node, cmd: SystemCommand) -> Result<Response, Status> {
    let (_, response) = node
        .raft
        .propose(request(&Command::System(cmd)), node.write_timeout())
        .await
        .map_err(ApiError::from)?;
    Ok(response)
}

fn unexpected(response: Response) -> Status {
    match response {
        Response::Refused { reason } => invalid(reason),
        other => ApiError::Internal(format!("unexpected answer {other:?}")).into(),
    }
}

/// `Admin.SetAccess`, on the leader.
pub async fn set(
    node: &Node,
    caller: Option<&Caller>,
    req: pb::SetAccessRequest,
) -> Result<pb::AccessEntry, Status> {
    node.check_serving()?;
    let roles = check_request(&req.client, &req.roles)?;
    check_scope("users", &req.users)?;
    check_scope("instruments", &req.instruments)?;
    let cmd = SystemCommand::SetAccess(Box::new(qastore_exchange::AccessChange {
        client: req.client.clone(),
        roles,
        users: req.users.clone(),
        instruments: req.instruments.clone(),
        set_by: caller.map_or_else(|| "an unauthenticated caller".into(), Caller::who),
        set_at_ns: now_ns(),
    }));
    match propose(node, cmd).await? {
        Response::AccessChanged { .. } => {
            let table = node.raft.app().access();
            let grant = table.get(&req.client).ok_or_else(|| {
                Status::from(ApiError::Internal(
                    "the entry set is not in the table".into(),
                ))
            })?;
            Ok(entry_to_pb(&req.client, grant))
        }
        other => Err(unexpected(other)),
    }
}

/// `Admin.RemoveAccess`, on the leader.
pub async fn remove(
    node: &Node,
    req: pb::RemoveAccessRequest,
) -> Result<pb::RemoveAccessResponse, Status> {
    node.check_serving()?;
    check_name("client", &req.client).map_err(|e| invalid(format!("field client: {e}")))?;
    let cmd = SystemCommand::RemoveAccess { client: req.client };
    match propose(node, cmd).await? {
        Response::AccessChanged { existed, .. } => Ok(pb::RemoveAccessResponse { existed }),
        other => Err(unexpected(other)),
    }
}

/// `Admin.ListAccess`: the table as this node applied it.
pub fn list(node: &Node) -> pb::ListAccessResponse {
    let table = node.raft.app().access();
    pb::ListAccessResponse {
        entries: table.iter().map(|(c, g)| entry_to_pb(c, g)).collect(),
    }
}
