//! What can go wrong making, reading or storing certificates.

use std::path::PathBuf;

/// An error of this crate; each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name, role or lifetime given by the caller is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, flag or argument.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Making or signing a certificate or key failed.
    #[error("{what}: {source}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// A certificate or key could not be read.
    #[error("{what}: {reason}")]
    Parse {
        /// The certificate or key.
        what: String,
        /// Why.
        reason: String,
    },
    /// A file that would be written exists already.
    #[error("{} exists already; nothing was written", .0.display())]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
