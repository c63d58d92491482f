//! `ctl auth` (the cluster's access table: which roles a client holds in place of its
//! certificate's) and `ctl audit` (the trail of operator actions, and the calls a node
//! refused).

use clap::{Args, Subcommand};
use qastore_client::Client;
use qastore_proto::v1 as pb;
use serde_json::{json, Value};

use super::admin::{node_addr, on_leader};
use super::time::{format_time, parse_time, TimeArg};
use super::{endpoint, failed_at, CtlResult};
use crate::output::{print, Format, Table};

/// What `ctl auth` does.
#[derive(Debug, Clone, Subcommand)]
pub enum AuthCommand {
    /// Give a client these roles in place of its certificate's (through the log: every node
    /// applies the same table).
    #[command(
        after_help = "Examples:\n  qastore ctl auth set quant-desk --role reader --role subscriber\n  qastore ctl auth set desk-7 --role reader --user u0007     # only u0007's data (and market data)\n  qastore ctl auth set rb-mm --role reader,subscriber --instrument 'SHFE.rb*'\n  qastore ctl auth set old-feed --none     # locked out, whatever its certificate says"
    )]
    Set {
        /// The client's name, as its certificate names it.
        client: String,
        /// A role: writer, reader, subscriber or admin (repeat, or separate with commas).
        #[arg(long = "role", value_delimiter = ',', required_unless_present = "none")]
        roles: Vec<String>,
        /// No roles at all: the client is locked out.
        #[arg(long, conflicts_with = "roles")]
        none: bool,
        /// Limit what it reads to these users' data (repeat, or separate with commas).
        #[arg(long = "user", value_delimiter = ',')]
        users: Vec<String>,
        /// Limit what it reads to these instruments: ids, or prefixes ending in `*` (repeat, or
        /// separate with commas).
        #[arg(long = "instrument", value_delimiter = ',')]
        instruments: Vec<String>,
    },
    /// Drop a client's entry: its certificate's roles apply again.
    #[command(after_help = "Example:\n  qastore ctl auth remove quant-desk")]
    Remove {
        /// The client's name.
        client: String,
    },
    /// The access table.
    #[command(after_help = "Example:\n  qastore ctl auth list --output json")]
    List,
}

/// What `ctl audit` lists.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only entries whose identity contains this text (`client ops`, `node 2`).
    #[arg(long)]
    who: Option<String>,
    /// Only entries whose action contains this text (`Halt`, `SetAccess`).
    #[arg(long)]
    action: Option<String>,
    /// Only entries from this time on (RFC 3339, a date, or epoch nanoseconds).
    #[arg(long, value_parser = parse_time)]
    since: Option<TimeArg>,
    /// Only actions that failed or were refused.
    #[arg(long)]
    failed: bool,
    /// The most entries shown, the latest ones.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    /// The calls one node refused (kept on that node, not in the log) instead of the trail.
    #[arg(long)]
    refused: bool,
    /// With --refused: the node's client API address (default: the first endpoint).
    #[arg(long, value_parser = endpoint::parse_endpoint, requires = "refused")]
    node: Option<String>,
}

fn entry_json(e: &pb::AccessEntry) -> Value {
    json!({
        "client": e.client,
        "roles": e.roles,
        "users": e.users,
        "instruments": e.instruments,
        "set_by": e.set_by,
        "set_at": format_time(e.set_at_ns),
        "index": e.index,
    })
}

fn scope_text(e: &pb::AccessEntry) -> String {
    let mut parts = Vec::new();
    if !e.users.is_empty() {
        parts.push(format!("users {}", e.users.join(",")));
    }
    if !e.instruments.is_empty() {
        parts.push(format!("instruments {}", e.instruments.join(",")));
    }
    if parts.is_empty() {
        "all data".into()
    } else {
        parts.join("; ")
    }
}

fn access_table(entries: &[pb::AccessEntry]) -> String {
    let mut t = Table::new(&["CLIENT", "ROLES", "SCOPE", "SET BY", "SET AT", "INDEX"]);
    for e in entries {
        t.row(vec![
            e.client.clone(),
            if e.roles.is_empty() {
                "(none: locked out)".into()
            } else {
                e.roles.join(",")
            },
            scope_text(e),
            e.set_by.clone(),
            format_time(e.set_at_ns),
            e.index.to_string(),
        ]);
    }
    t.render()
}

/// `ctl auth`.
pub async fn run(client: &Client, command: &AuthCommand, out: Format) -> CtlResult {
    match command {
        AuthCommand::Set {
            client: name,
            roles,
            none,
            users,
            instruments,
        } => {
            let roles = if *none { Vec::new() } else { roles.clone() };
            let e = on_leader(client, |mut a| {
                let req = client.request(pb::SetAccessRequest {
                    client: name.clone(),
                    roles: roles.clone(),
                    users: users.clone(),
                    instruments: instruments.clone(),
                });
                async move { a.set_access(req).await }
            })
            .await?;
            print(out, &entry_json(&e), || {
                access_table(std::slice::from_ref(&e))
            });
        }
        AuthCommand::Remove { client: name } => {
            let r = on_leader(client, |mut a| {
                let req = client.request(pb::RemoveAccessRequest {
                    client: name.clone(),
                });
                async move { a.remove_access(req).await }
            })
            .await?;
            print(out, &json!({"client": name, "existed": r.existed}), || {
                if r.existed {
                    format!("{name}: entry removed; its certificate's roles apply\n")
                } else {
                    format!("{name}: the table had no entry; its certificate's roles apply\n")
                }
            });
        }
        AuthCommand::List => {
            let r = on_leader(client, |mut a| {
                let req = client.request(pb::ListAccessRequest {});
                async move { a.list_access(req).await }
            })
            .await?;
            let list: Vec<Value> = r.entries.iter().map(entry_json).collect();
            print(out, &json!({ "entries": list }), || {
                if r.entries.is_empty() {
                    "the access table is empty: every client holds its certificate's roles\n".into()
                } else {
                    access_table(&r.entries)
                }
            });
        }
    }
    Ok(())
}

fn audit_json(e: &pb::AuditEntry) -> Value {
    json!({
        "index": e.index,
        "at": format_time(e.at_ns),
        "who": e.who,
        "from": e.remote,
        "node_id": e.node_id,
        "action": e.action,
        "detail": e.detail,
        "result": e.result,
    })
}

fn audit_table(entries: &[pb::AuditEntry]) -> String {
    let mut t = Table::new(&["INDEX", "AT", "NODE", "WHO", "FROM", "ACTION", "RESULT"]);
    for e in entries {
        t.row(vec![
            e.index.to_string(),
            format_time(e.at_ns),
            e.node_id.to_string(),
            e.who.clone(),
            e.remote.clone(),
            e.action.clone(),
            e.result.clone(),
        ]);
    }
    t.render()
}

/// `ctl audit`.
pub async fn audit(client: &Client, args: &AuditArgs, out: Format) -> CtlResult {
    let req = pb::ListAuditRequest {
        who: args.who.clone().unwrap_or_default(),
        action: args.action.clone().unwrap_or_default(),
        since_ns: args.since.map_or(0, |t| t.0),
        failed_only: args.failed,
        limit: args.limit,
        refused: args.refused,
    };
    let r = if args.refused {
        let addr = node_addr(client, args.node.clone());
        let mut a = client.admin_at(&addr).map_err(|e| e.to_string())?;
        a.list_audit(client.request(req))
            .await
            .map_err(failed_at(&addr))?
            .into_inner()
    } else {
        on_leader(client, |mut a| {
            let req = client.request(req.clone());
            async move { a.list_audit(req).await }
        })
        .await?
    };
    let list: Vec<Value> = r.entries.iter().map(audit_json).collect();
    print(out, &json!({ "entries": list }), || {
        if r.entries.is_empty() {
            "no entries\n".into()
        } else {
            audit_table(&r.entries)
        }
    });
    Ok(())
}
