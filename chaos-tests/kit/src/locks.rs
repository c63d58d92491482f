//! Which `LOCK` files under a directory are held, and by which processes: a node holds the
//! lock of its write-ahead log and of its engine while it runs, so a held lock means the
//! directory is in use whether or not its pid was recorded.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The name of the lock files of the write-ahead log and the engine.
const LOCK: &str = "LOCK";

/// How deep under the directory lock files are looked for (`node1/engine/db-000001/LOCK`).
const MAX_DEPTH: usize = 5;

/// A lock file some process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// The lock file.
    pub path: PathBuf,
    /// The processes holding it, where the system says (empty if it does not).
    pub pids: Vec<u32>,
}

/// Every `LOCK` file under `dir` that another open file holds locked.
pub fn held_locks(dir: &Path) -> Vec<HeldLock> {
    let mut files = Vec::new();
    lock_files(dir, MAX_DEPTH, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| is_held(f))
        .map(|path| {
            let pids = holders(&path);
            HeldLock { path, pids }
        })
        .collect()
}

fn lock_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() && depth > 0 {
            lock_files(&e.path(), depth - 1, out);
        } else if kind.is_file() && e.file_name() == LOCK {
            out.push(e.path());
        }
    }
}

/// Whether `path` is locked by someone: trying to take the lock fails. Taking it is harmless:
/// it is released at once, and the nodes only ever try the lock, never wait for it.
fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

/// The pids holding a lock on `path`, from the kernel's table of locks (`/proc/locks`), whose
/// lines read `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`.
fn holders(path: &Path) -> Vec<u32> {
    let Ok(inode) = std::fs::metadata(path).map(|m| m.ino()) else {
        return Vec::new();
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = table
        .lines()
        .filter(|l| !l.contains("->")) // waiters, not holders
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == "READ" || *f == "WRITE")?;
            let pid: u32 = fields.get(at + 1)?.parse().ok()?;
            let ino: u64 = fields.get(at + 2)?.rsplit(':').next()?.parse().ok()?;
            (ino == inode).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_found_with_its_holder_and_a_free_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join("node1/wal");
        let free = dir.path().join("node2/wal");
        std::fs::create_dir_all(&held).unwrap();
        std::fs::create_dir_all(&free).unwrap();
        std::fs::write(free.join(LOCK), b"").unwrap();
        let lock = File::create(held.join(LOCK)).unwrap();
        lock.try_lock().unwrap();
        let found = held_locks(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, held.join(LOCK));
        assert_eq!(found[0].pids, vec![std::process::id()]);
        drop(lock);
        assert!(held_locks(dir.path()).is_empty());
    }
}
