//! The cluster's access table: the roles an administrator gave a named client, which replace
//! the roles its certificate carries (to take a role away without reissuing a certificate, or
//! to lock a client out). Kept in the system keyspace and changed only through the log, so
//! every node decides alike.
//!
//! ```text
//! s access\0 <client>     the client's roles, who set them and when
//! ```
//!
//! Role names are checked by the node before it proposes a change; this crate keeps them as
//! text and only bounds their size.

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize, Serialize};

use crate::command::Response;
use crate::error::Result;
use crate::keys::{KeyBuf, SYSTEM};
use crate::query::decode_at;
use crate::record::encode;
use qastore_lsm::{Engine, WriteBatch};

/// The longest client name, in bytes (as a certificate's client name).
pub const MAX_CLIENT_BYTES: usize = 64;
/// The most roles one entry may list.
pub const MAX_ROLES: usize = 16;
/// The longest role name, in bytes.
pub const MAX_ROLE_BYTES: usize = 32;

/// One client's entry in the access table.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct AccessGrant {
    /// The roles it holds (none: locked out).
    pub roles: Vec<String>,
    /// The users whose data it may read (empty: any).
    pub users: Vec<String>,
    /// The instruments whose data it may read: ids, or prefixes ending in `*` (empty: any).
    pub instruments: Vec<String>,
    /// Who set them (the identity of the administrator).
    pub set_by: String,
    /// When (epoch nanoseconds, the proposing leader's clock).
    pub set_at_ns: i64,
    /// The log index of the change.
    pub index: u64,
}

/// The whole table, by client name.
pub type AccessTable = BTreeMap<String, AccessGrant>;

fn prefix() -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("access").build()
}

fn key(client: &str) -> Vec<u8> {
    KeyBuf::new(SYSTEM).id("access").last_id(client).build()
}

/// Every entry of the table.
pub fn load(engine: &Engine) -> Result<AccessTable> {
    let prefix = prefix();
    engine
        .scan_prefix(&prefix)
        .map(|row| {
            let (k, v) = row?;
            let client = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            Ok((client, decode_at(&k, &v)?))
        })
        .collect()
}

/// The most users or instruments one entry may name.
pub const MAX_SCOPE: usize = 1024;
/// The longest user or instrument name, in bytes.
pub const MAX_SCOPE_BYTES: usize = 64;

/// Why a change cannot be applied, or `None`.
fn check(
    client: &str,
    roles: &[String],
    users: &[String],
    instruments: &[String],
) -> Option<String> {
    for (field, names) in [("users", users), ("instruments", instruments)] {
        if names.len() > MAX_SCOPE {
            return Some(format!("field {field}: at most {MAX_SCOPE}"));
        }
        if names
            .iter()
            .any(|n| n.is_empty() || n.len() > MAX_SCOPE_BYTES)
        {
            return Some(format!(
                "field {field}: a name is 1 to {MAX_SCOPE_BYTES} bytes"
            ));
        }
    }
    if client.is_empty() || client.len() > MAX_CLIENT_BYTES {
        return Some(format!(
            "field client: a client name is 1 to {MAX_CLIENT_BYTES} bytes"
        ));
    }
    if roles.len() > MAX_ROLES {
        return Some(format!("field roles: at most {MAX_ROLES} roles"));
    }
    if roles
        .iter()
        .any(|r| r.is_empty() || r.len() > MAX_ROLE_BYTES)
    {
        return Some(format!(
            "field roles: a role name is 1 to {MAX_ROLE_BYTES} bytes"
        ));
    }
    None
}

/// What an entry gives a client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub roles: &'a [String],
    pub users: &'a [String],
    pub instruments: &'a [String],
}

/// Applies setting `client`'s roles at log index `index`, adding the write to `sys`; answers
/// the entry as it now stands.
pub(crate) fn set(
    client: &str,
    scope: Scope<'_>,
    set_by: &str,
    set_at_ns: i64,
    index: u64,
    sys: &mut WriteBatch,
) -> (Response, Option<AccessGrant>) {
    if let Some(reason) = check(client, scope.roles, scope.users, scope.instruments) {
        return (Response::Refused { reason }, None);
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    let grant = AccessGrant {
        roles: sorted(scope.roles),
        users: sorted(scope.users),
        instruments: sorted(scope.instruments),
        set_by: set_by.to_owned(),
        set_at_ns,
        index,
    };
    sys.put(key(client), encode(&grant));
    (
        Response::AccessChanged {
            existed: true,
            index,
        },
        Some(grant),
    )
}

/// Applies the removal of `client`'s entry (its certificate's roles apply again), adding it
/// to `sys`.
pub(crate) fn remove(
    table: &AccessTable,
    client: &str,
    index: u64,
    sys: &mut WriteBatch,
) -> Response {
    let existed = table.contains_key(client);
    if existed {
        sys.delete(key(client));
    }
    Response::AccessChanged { existed, index }
}
