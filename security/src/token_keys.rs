//! The token public-key file of a node, read again when it changes (looked at, at most once a
//! second, when a token is checked) or when [`TokenKeyFile::reload`] is called (on SIGHUP), so
//! a token key can be rolled without restarting a node: (1) add the new public key to the file
//! on every node, (2) issue tokens with the new signing key, (3) remove the old public key,
//! which turns away the tokens it signed from then on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::files::{file_stamp as stamp, FileStamp as Stamp};
use crate::token::{TokenHolder, TokenVerifier};

/// How often the file is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

struct Loaded {
    stamp: Stamp,
    checked: Instant,
    verifier: Arc<TokenVerifier>,
}

/// A [`TokenVerifier`] whose keys come from a file and follow it. A file that fails to load
/// leaves the last good keys in use, the failure logged and counted.
pub struct TokenKeyFile {
    cluster: String,
    path: PathBuf,
    loaded: Mutex<Loaded>,
    loads: AtomicU64,
    failed_reloads: AtomicU64,
}

impl std::fmt::Debug for TokenKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn read(cluster: &str, path: &Path) -> Result<TokenVerifier> {
    let pem = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    TokenVerifier::new(cluster, &pem).map_err(|e| Error::Parse {
        what: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl TokenKeyFile {
    /// The keys of `path` for `cluster`; fails if the file does not load now.
    pub fn open(cluster: &str, path: &Path) -> Result<TokenKeyFile> {
        let before = stamp(path);
        let verifier = read(cluster, path)?;
        Ok(TokenKeyFile {
            cluster: cluster.into(),
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                stamp: before,
                checked: Instant::now(),
                verifier: Arc::new(verifier),
            }),
            loads: AtomicU64::new(1),
            failed_reloads: AtomicU64::new(0),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whom `token` names, or why it is refused, with the file's current keys.
    pub fn verify(&self, token: &str) -> std::result::Result<TokenHolder, String> {
        self.current().verify(token)
    }

    /// How many public keys are in use.
    pub fn key_count(&self) -> usize {
        self.current().key_count()
    }

    /// Times the file was loaded (the first load included).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Reloads that failed since the start (the last good keys stayed in use).
    pub fn failed_reloads(&self) -> u64 {
        self.failed_reloads.load(Ordering::Relaxed)
    }

    /// Reads the file again now, whether or not it looks changed.
    pub fn reload(&self) -> Result<()> {
        let now = stamp(&self.path);
        let fresh = read(&self.cluster, &self.path);
        let mut loaded = self.loaded.lock();
        loaded.checked = Instant::now();
        loaded.stamp = now;
        self.install(&mut loaded, fresh)
    }

    fn install(&self, loaded: &mut Loaded, fresh: Result<TokenVerifier>) -> Result<()> {
        match fresh {
            Ok(verifier) => {
                tracing::info!(
                    file = %self.path.display(),
                    keys = verifier.key_count(),
                    "token keys loaded: tokens signed with any of them are accepted"
                );
                loaded.verifier = Arc::new(verifier);
                self.loads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    file = %self.path.display(),
                    error = %e,
                    "the token key file does not load; the keys loaded before stay in use"
                );
                self.failed_reloads.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn current(&self) -> Arc<TokenVerifier> {
        let mut loaded = self.loaded.lock();
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let now = stamp(&self.path);
            if now != loaded.stamp {
                // A half-written file fails here too: it is tried again at its next change.
                loaded.stamp = now;
                let fresh = read(&self.cluster, &self.path);
                let _ = self.install(&mut loaded, fresh);
            }
        }
        loaded.verifier.clone()
    }
}
