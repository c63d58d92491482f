//! The kit's error.

use std::path::Path;

/// Why the kit could not do something to a cluster or a process.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// An I/O operation failed; `what` says which, with the path where one applies.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The cluster has no node with this id.
    #[error("no node {0}")]
    NoNode(u64),
    /// The client library failed.
    #[error(transparent)]
    Client(#[from] qastore_client::ClientError),
    /// A node or the cluster did not get where it was expected to in time, or refused.
    #[error("{0}")]
    Cluster(String),
}

impl KitError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> KitError {
        KitError::Io {
            what: what.into(),
            source,
        }
    }

    /// An I/O error on the file or directory `path` while doing `what`.
    pub fn at(what: &str, path: &Path, source: std::io::Error) -> KitError {
        KitError::io(format!("{what} {}", path.display()), source)
    }
}

// The demo and the cluster benchmark report their failures as text.
impl From<KitError> for String {
    fn from(e: KitError) -> String {
        e.to_string()
    }
}
