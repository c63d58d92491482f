//! Checkpoints: point-in-time copies of the engine's flushed state.
//!
//! A checkpoint is what a Raft snapshot, a backup and a restore are made of: hard links to the
//! live tables, a manifest describing them, and a `CHECKPOINT` file with the log index covered,
//! an opaque blob from the caller, and every file with its size and CRC32 (for streaming).
//! The engine's owner may have it carry files of its own too, from the extra directories it
//! names ([`check_extra_dirs`]).
//!
//! * [`crate::Engine::checkpoint`]: writing one from an engine.
//! * [`verify`]: checking one end to end.
//! * [`CheckpointStore`]: a directory of them, with retention and leases.
//! * [`Installer`]: receiving one from a peer.
//! * [`EngineHome`]: switching the live engine to one.

pub(crate) mod create;
pub(crate) mod extra;
mod home;
mod install;
pub(crate) mod meta;
mod store;
pub(crate) mod verify;

use std::path::PathBuf;

pub use extra::check_extra_dirs;
pub use home::EngineHome;
pub use install::Installer;
pub use meta::{CheckpointFile, CheckpointMeta, CHECKPOINT_FILE};
pub use store::{CheckpointLease, CheckpointStore, DEFAULT_KEEP};
pub use verify::verify;

/// A complete checkpoint: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub meta: CheckpointMeta,
}

impl CheckpointInfo {
    /// The checkpoint's name (its directory's name).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Total bytes of its files.
    pub fn total_bytes(&self) -> u64 {
        self.meta.files.iter().map(|f| f.size).sum()
    }
}
