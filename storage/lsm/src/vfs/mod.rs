//! The file-system seam: every storage file goes through a [`Vfs`].
//!
//! Production uses [`OsVfs`] (real files, real fsyncs, `mmap`). Tests use [`SimVfs`], an
//! in-memory file system that remembers what has been made durable and can simulate a power cut
//! (every byte not yet fsynced is lost, directory changes not yet fsynced are undone) or fail
//! chosen operations.

mod os;
mod sim;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

pub use os::OsVfs;
pub use sim::{Fault, FaultOp, PowerCut, SimVfs};

/// An open file. All methods take `&self` so one handle can be shared between a writer and the
/// thread that fsyncs it.
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Fills `buf` from `offset`; fails if the file ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> Result<()>;
    /// Makes the file's data (and the length change) durable.
    fn sync_data(&self) -> Result<()>;
    /// Starts writing `len` bytes from `offset` to the device without waiting for them or
    /// making them durable: a large file written this way as it grows never holds a pile of
    /// dirty pages that a later fsync, of it or of another file on the same file system (the
    /// log), must wait for. Durability still takes [`VfsFile::sync_data`].
    fn start_writeback(&self, offset: u64, len: u64) -> Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// The path the file was opened under.
    fn path(&self) -> &Path;
}

/// A shared, thread-safe file handle.
pub type FileRef = Arc<dyn VfsFile>;

/// The file-system operations the storage engine needs.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Creates a new, empty file for reading and writing. Fails if it already exists, so that a
    /// file that may be mapped is never truncated by accident.
    fn create(&self, path: &Path) -> Result<FileRef>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> Result<FileRef>;
    /// Renames `from` to `to`, replacing `to` if it exists. Durable only after [`Vfs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Creates a hard link `to` pointing at `from`'s data.
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()>;
    /// Lists the names of the entries of a directory (files and sub-directories).
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> Result<bool>;
    /// Takes an exclusive lock on the file at `path` (creating it if needed), held until the
    /// returned guard is dropped. Fails with [`Error::Locked`] if someone else holds it.
    fn lock(&self, path: &Path) -> Result<FileLock>;
    /// Maps a file read-only. The file must not change while mapped: we only map files that are
    /// complete and never written again.
    fn map(&self, path: &Path) -> Result<Bytes>;

    /// Reads a whole file into memory.
    fn read_all(&self, path: &Path) -> Result<Vec<u8>> {
        let file = self.open(path)?;
        let len = usize::try_from(file.len()?).map_err(|_| {
            Error::io(
                "read",
                path,
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, "file too large"),
            )
        })?;
        let mut buf = vec![0u8; len];
        file.read_at(0, &mut buf)?;
        Ok(buf)
    }
}

/// A shared file system.
pub type VfsRef = Arc<dyn Vfs>;

/// An exclusive lock on a file, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _held: Box<dyn fmt::Debug + Send + Sync>,
}

impl FileLock {
    /// Wraps whatever keeps the lock held (dropping it must release the lock).
    pub fn new(held: impl fmt::Debug + Send + Sync + 'static) -> Self {
        FileLock {
            _held: Box::new(held),
        }
    }
}

/// The name of the lock file in WAL and engine directories.
pub const LOCK_FILE: &str = "LOCK";

/// Writes `data` to `path` crash-atomically: a temporary file is written and fsynced, renamed
/// over `path`, and the directory is fsynced. After a crash `path` holds either the old or the
/// new content, never a mix.
pub fn write_atomic(vfs: &dyn Vfs, path: &Path, data: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    if vfs.exists(&tmp)? {
        vfs.remove(&tmp)?;
    }
    let file = vfs.create(&tmp)?;
    file.write_at(0, data)?;
    file.sync_data()?;
    drop(file);
    vfs.rename(&tmp, path)?;
    vfs.sync_dir(parent_dir(path))
}

/// Every file under `root`, as paths relative to it with `/` separators, in sorted order.
pub fn walk_files(vfs: &dyn Vfs, root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        for name in vfs.list(&dir)? {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if vfs.is_dir(&dir.join(&name))? {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The temporary name a file is written under before being renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
