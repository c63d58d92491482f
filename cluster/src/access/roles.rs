//! Where a client's roles come from when the cluster's access table names it.

use qastore_security::Role;

use super::scope::Scope;

/// What the access table gives one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Its roles.
    pub roles: Vec<Role>,
    /// The data it may read.
    pub scope: Scope,
}

/// The roles the cluster's access table gives a client, replacing those of its certificate.
pub trait RoleSource: Send + Sync {
    /// `None` when the table does not name `client`: its certificate's (or token's) roles
    /// apply.
    fn grant_of(&self, client: &str) -> Option<Grant>;
}
