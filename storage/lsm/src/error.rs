//! The engine crate's error type.

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

/// Result alias used throughout the engine crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the storage engine and the WAL.
///
/// `Error` is `Clone` (I/O errors are shared behind an `Arc`) so that one fatal failure can be
/// handed to every caller that was waiting on it.
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed (`open`, `write`, `sync_data`, ...).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// Stored bytes failed a checksum or structural check. The data is not used.
    #[error("corruption in {file} at byte {offset}: {reason}")]
    Corruption {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Byte offset of the bad record or block within the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },

    /// A stored value does not decode as what its key says it holds.
    #[error("stored value under key {key:?} does not decode: {reason}")]
    BadValue {
        /// The key (bytes shown lossily as text).
        key: String,
        /// Why it does not decode.
        reason: String,
    },

    /// The caller passed something the engine does not accept; nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(#[from] InvalidArgument),

    /// An fsync (or another write the log depends on) failed earlier. The WAL has stopped and
    /// will not accept or acknowledge anything until it is reopened.
    #[error("write-ahead log stopped after a failed write: {0}")]
    WalFailed(Arc<Error>),

    /// A background flush failed; the engine refuses writes until it is reopened.
    #[error("engine stopped after a background failure: {0}")]
    EngineFailed(Arc<Error>),

    /// Another process (or another open instance) holds the directory's lock.
    #[error("{path} is locked: another process is using this directory")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The component was closed while the operation was pending.
    #[error("{0} is closed")]
    Closed(&'static str),
}

/// Bad input to the engine or WAL API. Each variant names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidArgument {
    /// A key of length zero.
    #[error("key at batch position {position} is empty")]
    EmptyKey {
        /// Position of the operation within its batch.
        position: usize,
    },
    /// A key longer than the configured maximum.
    #[error("key at batch position {position} is {len} bytes, over the limit of {max}")]
    KeyTooLong {
        /// Position of the operation within its batch.
        position: usize,
        /// Its length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value longer than the configured maximum.
    #[error("value at batch position {position} is {len} bytes, over the limit of {max}")]
    ValueTooLong {
        /// Position of the operation within its batch.
        position: usize,
        /// Its length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// More operations in one batch than allowed (for engine batches: more than 65,536
    /// operations on one key).
    #[error("batch holds {len} operations, over the limit of {max}")]
    BatchTooLarge {
        /// Number of operations.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `log_index` is not above the last applied index.
    #[error("log_index {index} is not above the last applied index {last}")]
    IndexNotIncreasing {
        /// The index passed in.
        index: u64,
        /// The last index the engine applied.
        last: u64,
    },
    /// `log_index` is outside the range a sequence number can encode.
    #[error("log_index {index} is out of range (must be 1..={max})")]
    IndexOutOfRange {
        /// The index passed in.
        index: u64,
        /// The largest accepted index.
        max: u64,
    },
    /// WAL entries that do not continue the log without a gap.
    #[error("entry index {index} does not follow the log (expected {expected})")]
    NonContiguous {
        /// The index passed in.
        index: u64,
        /// The index the log expects next.
        expected: u64,
    },
    /// A WAL entry whose term is below the term of the entry before it.
    #[error("entry {index} has term {term}, below the previous entry's term {previous}")]
    TermRegressed {
        /// The entry's log index.
        index: u64,
        /// Its term.
        term: u64,
        /// The term of the entry before it.
        previous: u64,
    },
    /// A WAL entry larger than a frame can carry.
    #[error("entry {index} payload is {len} bytes, over the limit of {max}")]
    EntryTooLarge {
        /// The entry's log index.
        index: u64,
        /// Its payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A vote blob larger than the metadata file's slot.
    #[error("vote is {len} bytes, over the limit of {max}")]
    VoteTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An engine or WAL option with a value that cannot work.
    #[error("option {name}: {reason}")]
    BadOption {
        /// The option's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint name that the store does not hold.
    #[error("no checkpoint named {name:?}")]
    UnknownCheckpoint {
        /// The name asked for.
        name: String,
    },
    /// A file name a checkpoint does not list (or could never list).
    #[error("checkpoint has no file named {name:?}")]
    UnknownCheckpointFile {
        /// The file name.
        name: String,
    },
    /// An extra directory a checkpoint cannot carry (see [`crate::checkpoint::extra`]), or
    /// one listed twice.
    #[error("{name:?} cannot be a checkpoint's extra directory")]
    BadExtraDir {
        /// The directory name.
        name: String,
    },
    /// A chunk outside a checkpoint file's size.
    #[error("chunk at offset {offset} is outside {name:?} ({size} bytes)")]
    ChunkOutOfRange {
        /// The file name.
        name: String,
        /// The chunk's offset.
        offset: u64,
        /// The file's size.
        size: u64,
    },
    /// A read asked for entries that are not in the log.
    #[error("log entries {from}..{to} are not available (log holds {first}..={last})")]
    OutOfLog {
        /// Start of the requested range.
        from: u64,
        /// End of the requested range (exclusive).
        to: u64,
        /// First index held.
        first: u64,
        /// Last index held.
        last: u64,
    },
}

impl Error {
    /// Wraps an `std::io::Error` with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Builds a corruption error naming the file and byte offset.
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// The `std::io::ErrorKind` behind this error, if it came from the OS.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            Error::WalFailed(inner) | Error::EngineFailed(inner) => inner.io_kind(),
            _ => None,
        }
    }
}
