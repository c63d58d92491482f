//! The exchange crate's error type.

use thiserror::Error;

/// Result alias used throughout the exchange crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the exchange layer: the engine's errors, kept whole, and
/// those of the exchange itself.
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// The engine (or a value stored in it) failed; its message is this error's message.
    #[error("{0}")]
    Engine(#[from] qastore_lsm::Error),

    /// A Parquet file could not be produced.
    #[error("writing {path}: {reason}")]
    Olap {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },

    /// A setting is out of range or does not parse (the replicated settings or calendar).
    #[error("setting {name}: {reason}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// The caller passed a query the exchange does not accept; nothing was read.
    #[error("invalid argument: {0}")]
    InvalidArgument(#[from] InvalidArgument),
}

/// Bad input to the exchange's queries. Each variant names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidArgument {
    /// A page larger than allowed.
    #[error("page limit {limit} is over the maximum of {max}")]
    PageTooLarge {
        /// The limit asked for.
        limit: usize,
        /// The maximum.
        max: usize,
    },
    /// A page token that does not resume this query.
    #[error("page_token does not belong to this query")]
    BadPageToken,
    /// An empty or inverted time range.
    #[error("time range [{from}, {to}) is empty")]
    BadTimeRange {
        /// Start.
        from: i64,
        /// End.
        to: i64,
    },
    /// An instrument whose product the trading calendar does not know.
    #[error("instrument {instrument:?} belongs to no product in the trading calendar")]
    UnknownProduct {
        /// The instrument.
        instrument: String,
    },
}

impl From<qastore_lsm::InvalidArgument> for Error {
    fn from(e: qastore_lsm::InvalidArgument) -> Self {
        Error::Engine(e.into())
    }
}

impl Error {
    /// A stored value that does not decode as what its key says it holds (an engine error:
    /// the stored data cannot be trusted).
    pub fn bad_value(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Engine(qastore_lsm::Error::BadValue {
            key: key.into(),
            reason: reason.into(),
        })
    }

    /// Stored bytes that failed a check (an engine error: the data is not used).
    pub fn corruption(
        file: impl Into<std::path::PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Engine(qastore_lsm::Error::corruption(file, offset, reason))
    }
}
