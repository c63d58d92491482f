//! Where a client's roles come from when the cluster's access table names it.

use qastore_security::Role;

/// The roles the cluster's access table gives a client, replacing those of its certificate.
pub trait RoleSource: Send + Sync {
    /// `None` when the table does not name `client`: its certificate's roles apply.
    fn roles_of(&self, client: &str) -> Option<Vec<Role>>;
}
