//! Who a certificate names: a node of a cluster or a client of it, and the roles a client's
//! certificate grants. Both travel as URIs in the certificate's subject alternative names,
//! which is where TLS stacks and operators' tools already look:
//!
//! * `qastore://<cluster>/ca`: the cluster's certificate authority;
//! * `qastore://<cluster>/node/<id>`: node `<id>`;
//! * `qastore://<cluster>/client/<name>`: the client `<name>`;
//! * `qastore://<cluster>/role/<role>`: one role of that client, as many as it holds.

use std::fmt;
use std::str::FromStr;

use crate::error::{invalid, Error, Result};

const SCHEME: &str = "qastore://";

/// What a caller may do. A certificate may grant several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Writes records.
    Writer,
    /// Runs queries.
    Reader,
    /// Subscribes to the event stream.
    Subscriber,
    /// Operates the cluster: the Admin service, drills, membership, backups, halting.
    Admin,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [Role::Writer, Role::Reader, Role::Subscriber, Role::Admin];

    /// The role's name as written in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Subscriber => "subscriber",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                invalid(
                    "role",
                    format!("{s:?} is not a role (writer, reader, subscriber or admin)"),
                )
            })
    }
}

/// Whom a certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The certificate authority of a cluster.
    Authority {
        /// The cluster id.
        cluster: String,
    },
    /// A node of a cluster.
    Node {
        /// The cluster id.
        cluster: String,
        /// The node id.
        node_id: u64,
    },
    /// A client of a cluster.
    Client {
        /// The cluster id.
        cluster: String,
        /// The client's name.
        name: String,
    },
}

impl Identity {
    /// The cluster the identity belongs to.
    pub fn cluster(&self) -> &str {
        match self {
            Identity::Authority { cluster }
            | Identity::Node { cluster, .. }
            | Identity::Client { cluster, .. } => cluster,
        }
    }

    /// The URI naming this identity in a certificate.
    pub fn uri(&self) -> String {
        match self {
            Identity::Authority { cluster } => format!("{SCHEME}{cluster}/ca"),
            Identity::Node { cluster, node_id } => format!("{SCHEME}{cluster}/node/{node_id}"),
            Identity::Client { cluster, name } => format!("{SCHEME}{cluster}/client/{name}"),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Authority { cluster } => write!(f, "the CA of cluster {cluster}"),
            Identity::Node { cluster, node_id } => write!(f, "node {node_id} of cluster {cluster}"),
            Identity::Client { cluster, name } => write!(f, "client {name} of cluster {cluster}"),
        }
    }
}

/// The URI granting `role` in `cluster`.
pub fn role_uri(cluster: &str, role: Role) -> String {
    format!("{SCHEME}{cluster}/role/{role}")
}

/// What one URI of a certificate says, if it is one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameUri {
    /// It names an identity.
    Identity(Identity),
    /// It grants a role in a cluster.
    Role {
        /// The cluster id.
        cluster: String,
        /// The role.
        role: Role,
    },
}

/// Reads one URI of a certificate: `None` for a URI that is not ours, an error for one of
/// ours that is malformed.
pub fn parse_uri(uri: &str) -> Result<Option<NameUri>> {
    let Some(rest) = uri.strip_prefix(SCHEME) else {
        return Ok(None);
    };
    let bad = |why: &str| invalid("certificate URI", format!("{uri:?}: {why}"));
    let parts: Vec<&str> = rest.split('/').collect();
    let cluster = parts.first().copied().unwrap_or_default();
    check_name("cluster id", cluster).map_err(|_| bad("the cluster id is not valid"))?;
    let cluster = cluster.to_string();
    match parts.as_slice() {
        [_, "ca"] => Ok(Some(NameUri::Identity(Identity::Authority { cluster }))),
        [_, "node", id] => {
            let node_id: u64 = id.parse().map_err(|_| bad("the node id is not a number"))?;
            if node_id == 0 {
                return Err(bad("node id 0 is not a node"));
            }
            Ok(Some(NameUri::Identity(Identity::Node { cluster, node_id })))
        }
        [_, "client", name] => {
            check_name("client name", name).map_err(|_| bad("the client name is not valid"))?;
            Ok(Some(NameUri::Identity(Identity::Client {
                cluster,
                name: (*name).to_string(),
            })))
        }
        [_, "role", role] => Ok(Some(NameUri::Role {
            cluster,
            role: role.parse().map_err(|_| bad("not a role"))?,
        })),
        _ => Err(bad("not a CA, node, client or role")),
    }
}

/// Checks a cluster id or client name: 1 to 64 letters, digits, `-`, `_` or `.` (the same rule
/// as a node's `cluster_id`), so that it fits a URI path segment unescaped.
pub fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_reads_back_from_its_uri() {
        let ids = [
            Identity::Authority {
                cluster: "prod-futures".into(),
            },
            Identity::Node {
                cluster: "prod-futures".into(),
                node_id: 3,
            },
            Identity::Client {
                cluster: "prod-futures".into(),
                name: "risk.engine_1".into(),
            },
        ];
        for id in ids {
            assert_eq!(
                parse_uri(&id.uri()).unwrap(),
                Some(NameUri::Identity(id.clone()))
            );
        }
        for role in Role::ALL {
            assert_eq!(
                parse_uri(&role_uri("c1", role)).unwrap(),
                Some(NameUri::Role {
                    cluster: "c1".into(),
                    role
                })
            );
        }
    }

    #[test]
    fn foreign_uris_are_ignored_and_malformed_ones_refused() {
        assert_eq!(parse_uri("https://example.com/node/1").unwrap(), None);
        for bad in [
            "qastore://c1/node/zero",
            "qastore://c1/node/0",
            "qastore://c1/client/",
            "qastore://c1/role/root",
            "qastore:///node/1",
            "qastore://c1/other/1",
            "qastore://c 1/ca",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn roles_parse_by_name_only() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        let e = "Admin".parse::<Role>().unwrap_err().to_string();
        assert!(e.contains("role") && e.contains("writer"), "{e}");
    }
}
