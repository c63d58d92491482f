//! Where `qastore certs` keeps what it makes, and how it writes it.
//!
//! One directory per cluster:
//!
//! ```text
//! certs/
//!   ca.pem               the CA certificate: every node and client trusts it
//!   ca.key               the CA key: stays with the operator, never on a node
//!   node-1.pem node-1.key
//!   client-<name>.pem client-<name>.key
//! ```
//!
//! Every file is written whole or not at all (a temporary file, synced, then renamed over the
//! name, and the directory synced); keys are readable by their owner only. Nothing is replaced
//! unless the caller asks, and the CA never is.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{io, Error, Result};

/// A certificate directory.
#[derive(Debug, Clone)]
pub struct CertDir {
    root: PathBuf,
}

/// A certificate and its key, as paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPaths {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl CertDir {
    /// The directory at `root` (made when something is first written).
    pub fn new(root: impl Into<PathBuf>) -> CertDir {
        CertDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA's files.
    pub fn ca(&self) -> PairPaths {
        self.pair("ca")
    }

    /// Node `node_id`'s files.
    pub fn node(&self, node_id: u64) -> PairPaths {
        self.pair(&format!("node-{node_id}"))
    }

    /// The files of client `name`.
    pub fn client(&self, name: &str) -> PairPaths {
        self.pair(&format!("client-{name}"))
    }

    /// The cluster's token key: `cert` is its public half (`token.pub`, given to every node),
    /// `key` the signing key (`token.key`, stays with the operator, like `ca.key`).
    pub fn token_key(&self) -> PairPaths {
        PairPaths {
            cert: self.root.join("token.pub"),
            key: self.root.join("token.key"),
        }
    }

    fn pair(&self, stem: &str) -> PairPaths {
        PairPaths {
            cert: self.root.join(format!("{stem}.pem")),
            key: self.root.join(format!("{stem}.key")),
        }
    }

    /// Writes a certificate and its key to `paths`. Unless `replace`, refuses (writing
    /// nothing) when either exists.
    pub fn write_pair(
        &self,
        paths: &PairPaths,
        cert_pem: &str,
        key_pem: &str,
        replace: bool,
    ) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        if !replace {
            for path in [&paths.cert, &paths.key] {
                if path.exists() {
                    return Err(Error::Exists(path.clone()));
                }
            }
        }
        // The key first: a certificate on disk without its key would look usable.
        write_whole(&paths.key, key_pem.as_bytes(), 0o600)?;
        write_whole(&paths.cert, cert_pem.as_bytes(), 0o644)?;
        sync_dir(&self.root)
    }
}

/// What identifies one version of a file: its inode (a file replaced by a rename is a new
/// one), length and modification time. `None` if it cannot be read.
pub(crate) type FileStamp = Option<(u64, u64, std::time::SystemTime)>;

/// The [`FileStamp`] of `path` now.
pub(crate) fn file_stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()?))
}

/// Reads a PEM file whole.
pub fn read_pem(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io(path))
}

/// Writes `data` to `path` whole or not at all, with permissions `mode`.
fn write_whole(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(data).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
