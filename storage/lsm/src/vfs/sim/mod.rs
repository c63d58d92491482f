//! [`SimVfs`]: an in-memory file system that knows what is durable.
//!
//! Every file remembers the bytes it held at its last `sync_data`, and every directory the
//! entries it held at its last `sync_dir`. [`SimVfs::power_cut`] throws everything else away,
//! the way a machine losing power loses its page cache, and halts the file system until
//! [`SimVfs::restart`]: the "process" that was running sees only errors from then on, as if it
//! had died with the machine. Chosen operations can also be made to fail ([`Fault`]), or the power
//! can be cut automatically after a given number of mutating operations
//! ([`SimVfs::crash_after_ops`]), which is how tests crash at random points.
//!
//! Directory changes (create, rename, remove, link) not yet made durable by `sync_dir` are kept
//! in order. [`PowerCut::DropUnsynced`] undoes all of them; the other modes keep a random prefix,
//! the way a journaling file system may have committed some of them (in order, a rename whole).
//!
//! Simplifications: directories themselves are durable as soon as they are created or removed
//! (only their entries are tracked), and a file's length change is durable with its data.

mod fault;
mod inode;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{parent_dir, FileLock, FileRef, Vfs, VfsFile};
use crate::error::{Error, Result};

use fault::FaultState;
pub use fault::{Fault, FaultOp};
use inode::Inode;
pub use inode::PowerCut;

type InodeRef = Arc<Mutex<Inode>>;

#[derive(Debug, Default, Clone)]
struct Dir {
    live: BTreeMap<String, InodeRef>,
    durable: BTreeMap<String, InodeRef>,
}

/// One unsynced directory operation: the entries it set, as (directory, name, new target).
#[derive(Debug)]
struct DirOp {
    changes: Vec<(PathBuf, String, Option<InodeRef>)>,
}

struct State {
    generation: u64,
    halted: bool,
    dirs: BTreeMap<PathBuf, Dir>,
    dir_log: Vec<DirOp>,
    faults: Vec<FaultState>,
    crash_after: Option<(u64, PowerCut)>,
    mutating_ops: u64,
    syncs: u64,
    sync_latency: std::time::Duration,
    /// Held locks: path -> (boot generation, token).
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    rng: SmallRng,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimState")
            .field("generation", &self.generation)
            .field("halted", &self.halted)
            .field("dirs", &self.dirs.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An in-memory, fault-injecting file system for tests. Cloning shares the same file system.
#[derive(Debug, Clone)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

fn sim_err(op: &'static str, path: &Path, kind: io::ErrorKind, msg: &str) -> Error {
    Error::io(op, path, io::Error::new(kind, msg.to_string()))
}

impl SimVfs {
    /// An empty file system; `seed` drives the random choices of torn power cuts.
    pub fn new(seed: u64) -> Self {
        SimVfs {
            state: Arc::new(Mutex::new(State {
                generation: 0,
                halted: false,
                dirs: BTreeMap::new(),
                dir_log: Vec::new(),
                faults: Vec::new(),
                crash_after: None,
                mutating_ops: 0,
                syncs: 0,
                sync_latency: std::time::Duration::ZERO,
                locks: BTreeMap::new(),
                next_lock: 0,
                rng: SmallRng::seed_from_u64(seed),
            })),
        }
    }

    /// This file system as a shared [`super::VfsRef`].
    pub fn shared(&self) -> super::VfsRef {
        Arc::new(self.clone())
    }

    /// Cuts the power: every unsynced byte and directory change is lost (as `mode` says), every
    /// open handle is dead, and every operation fails until [`SimVfs::restart`].
    pub fn power_cut(&self, mode: PowerCut) {
        self.state.lock().cut(mode);
    }

    /// Brings the machine back after a power cut: operations work again, on the durable state.
    pub fn restart(&self) {
        let mut st = self.state.lock();
        st.halted = false;
        st.crash_after = None;
        // The processes that held locks died with the machine.
        st.locks.clear();
    }

    /// Whether the power is cut (until [`SimVfs::restart`]).
    pub fn is_halted(&self) -> bool {
        self.state.lock().halted
    }

    /// Cuts the power automatically when the `n`-th mutating operation from now is attempted
    /// (that operation fails). Mutating operations are writes, truncations, syncs, creates,
    /// renames, removes and links.
    pub fn crash_after_ops(&self, n: u64, mode: PowerCut) {
        let mut st = self.state.lock();
        st.crash_after = Some((st.mutating_ops + n.max(1), mode));
    }

    /// The number of mutating operations performed so far.
    pub fn mutating_ops(&self) -> u64 {
        self.state.lock().mutating_ops
    }

    /// The number of successful `sync_data` calls so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Makes every `sync_data` take at least `latency`, like a real disk, so that tests can
    /// watch writers pile up behind an fsync. The wait happens outside the file system's lock.
    pub fn set_sync_latency(&self, latency: std::time::Duration) {
        self.state.lock().sync_latency = latency;
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(FaultState {
            fault,
            seen: 0,
            failed: 0,
        });
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Overwrites bytes of a file directly and durably, bypassing everything: for tests that
    /// simulate on-disk corruption.
    pub fn corrupt(&self, path: &Path, offset: usize, bytes: &[u8]) -> Result<()> {
        let st = self.state.lock();
        let inode = st.lookup(path).ok_or_else(|| not_found("corrupt", path))?;
        let mut ino = inode.lock();
        ino.write(offset, bytes);
        ino.sync();
        Ok(())
    }

    /// Durably sets a file's length directly, bypassing everything (tests of torn tails).
    pub fn set_len_durable(&self, path: &Path, len: usize) -> Result<()> {
        let st = self.state.lock();
        let inode = st.lookup(path).ok_or_else(|| not_found("truncate", path))?;
        let mut ino = inode.lock();
        ino.set_len(len);
        ino.sync();
        Ok(())
    }

    /// The current length of a file (for tests).
    pub fn file_len(&self, path: &Path) -> Option<usize> {
        let st = self.state.lock();
        st.lookup(path).map(|i| i.lock().data.len())
    }
}

fn not_found(op: &'static str, path: &Path) -> Error {
    sim_err(
        op,
        path,
        io::ErrorKind::NotFound,
        "no such file or directory",
    )
}

fn split(path: &Path) -> (PathBuf, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (parent_dir(path).to_path_buf(), name)
}

impl State {
    fn cut(&mut self, mode: PowerCut) {
        self.halted = true;
        self.generation += 1;
        self.crash_after = None;
        for dir in self.dirs.values_mut() {
            dir.live = dir.durable.clone();
        }
        let log = std::mem::take(&mut self.dir_log);
        let kept = match mode {
            PowerCut::DropUnsynced => 0,
            _ => self.rng.random_range(0..=log.len()),
        };
        for op in &log[..kept] {
            for (dir, name, target) in &op.changes {
                if let Some(d) = self.dirs.get_mut(dir) {
                    match target {
                        Some(inode) => d.live.insert(name.clone(), inode.clone()),
                        None => d.live.remove(name),
                    };
                    d.durable = d.live.clone();
                }
            }
        }
        let mut seen = HashSet::new();
        let mut inodes = Vec::new();
        for dir in self.dirs.values_mut() {
            dir.durable = dir.live.clone();
            for inode in dir.live.values() {
                if seen.insert(Arc::as_ptr(inode)) {
                    inodes.push(inode.clone());
                }
            }
        }
        for inode in inodes {
            inode.lock().lose_unsynced(mode, &mut self.rng);
        }
    }

    fn lookup(&self, path: &Path) -> Option<InodeRef> {
        let (dir, name) = split(path);
        self.dirs.get(&dir)?.live.get(&name).cloned()
    }

    /// Gatekeeper for every operation: the machine must be up, a handle must be from the current
    /// boot, faults and scheduled crashes apply.
    fn check(
        &mut self,
        op: &'static str,
        kind: Option<FaultOp>,
        mutating: bool,
        path: &Path,
        generation: Option<u64>,
    ) -> Result<()> {
        if self.halted {
            return Err(sim_err(
                op,
                path,
                io::ErrorKind::Other,
                "simulated power loss",
            ));
        }
        if generation.is_some_and(|g| g != self.generation) {
            return Err(sim_err(
                op,
                path,
                io::ErrorKind::Other,
                "stale handle from before a simulated power loss",
            ));
        }
        if mutating {
            self.mutating_ops += 1;
            if let Some((at, mode)) = self.crash_after {
                if self.mutating_ops >= at {
                    self.cut(mode);
                    return Err(sim_err(
                        op,
                        path,
                        io::ErrorKind::Other,
                        "simulated power loss",
                    ));
                }
            }
        }
        if let Some(kind) = kind {
            for fs in &mut self.faults {
                if !fs.fault.matches(kind, path) {
                    continue;
                }
                fs.seen += 1;
                let exhausted = fs.fault.times.is_some_and(|t| fs.failed >= t);
                if fs.seen > fs.fault.after && !exhausted {
                    fs.failed += 1;
                    return Err(sim_err(op, path, fs.fault.kind, "injected fault"));
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, changes: Vec<(PathBuf, String, Option<InodeRef>)>) {
        self.dir_log.push(DirOp { changes });
    }

    fn dir_mut(&mut self, op: &'static str, dir: &Path) -> Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(op, dir))
    }
}

/// A lock held in a [`SimVfs`]; releasing it only removes the lock it took (a restart may have
/// cleared it and someone else may hold the path now).
#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    token: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.locks.get(&self.path) == Some(&self.token) {
            st.locks.remove(&self.path);
        }
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeRef,
    generation: u64,
    path: PathBuf,
}

impl VfsFile for SimFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut st = self.state.lock();
        st.check(
            "write",
            Some(FaultOp::Write),
            true,
            &self.path,
            Some(self.generation),
        )?;
        self.inode.lock().write(offset as usize, data);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut st = self.state.lock();
        st.check("read", None, false, &self.path, Some(self.generation))?;
        let ino = self.inode.lock();
        let start = offset as usize;
        let end = start + buf.len();
        if end > ino.data.len() {
            return Err(sim_err(
                "read",
                &self.path,
                io::ErrorKind::UnexpectedEof,
                "read past end of file",
            ));
        }
        buf.copy_from_slice(&ino.data[start..end]);
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        let mut st = self.state.lock();
        st.check("stat", None, false, &self.path, Some(self.generation))?;
        let len = self.inode.lock().data.len();
        Ok(len as u64)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut st = self.state.lock();
        st.check(
            "truncate",
            Some(FaultOp::Write),
            true,
            &self.path,
            Some(self.generation),
        )?;
        self.inode.lock().set_len(len as usize);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let latency = self.state.lock().sync_latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let mut st = self.state.lock();
        st.check(
            "sync_data",
            Some(FaultOp::Sync),
            true,
            &self.path,
            Some(self.generation),
        )?;
        self.inode.lock().sync();
        st.syncs += 1;
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl SimVfs {
    fn handle(&self, st: &State, inode: InodeRef, path: &Path) -> FileRef {
        Arc::new(SimFile {
            state: self.state.clone(),
            inode,
            generation: st.generation,
            path: path.to_path_buf(),
        })
    }
}

impl Vfs for SimVfs {
    fn create(&self, path: &Path) -> Result<FileRef> {
        let mut st = self.state.lock();
        st.check("create", Some(FaultOp::Create), true, path, None)?;
        let (dir, name) = split(path);
        let d = st.dir_mut("create", &dir)?;
        if d.live.contains_key(&name) {
            return Err(sim_err(
                "create",
                path,
                io::ErrorKind::AlreadyExists,
                "file exists",
            ));
        }
        let inode: InodeRef = Arc::default();
        d.live.insert(name.clone(), inode.clone());
        st.record(vec![(dir, name, Some(inode.clone()))]);
        Ok(self.handle(&st, inode, path))
    }

    fn open(&self, path: &Path) -> Result<FileRef> {
        let mut st = self.state.lock();
        st.check("open", None, false, path, None)?;
        let inode = st.lookup(path).ok_or_else(|| not_found("open", path))?;
        Ok(self.handle(&st, inode, path))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.check("rename", Some(FaultOp::Rename), true, from, None)?;
        let (from_dir, from_name) = split(from);
        let (to_dir, to_name) = split(to);
        if !st.dirs.contains_key(&to_dir) {
            return Err(not_found("rename", to));
        }
        let inode = st
            .dir_mut("rename", &from_dir)?
            .live
            .remove(&from_name)
            .ok_or_else(|| not_found("rename", from))?;
        st.dir_mut("rename", &to_dir)?
            .live
            .insert(to_name.clone(), inode.clone());
        st.record(vec![
            (from_dir, from_name, None),
            (to_dir, to_name, Some(inode)),
        ]);
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.check("remove", Some(FaultOp::Remove), true, path, None)?;
        let (dir, name) = split(path);
        st.dir_mut("remove", &dir)?
            .live
            .remove(&name)
            .ok_or_else(|| not_found("remove", path))?;
        st.record(vec![(dir, name, None)]);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.check("hard_link", Some(FaultOp::Create), true, to, None)?;
        let inode = st
            .lookup(from)
            .ok_or_else(|| not_found("hard_link", from))?;
        let (dir, name) = split(to);
        let d = st.dir_mut("hard_link", &dir)?;
        if d.live.contains_key(&name) {
            return Err(sim_err(
                "hard_link",
                to,
                io::ErrorKind::AlreadyExists,
                "file exists",
            ));
        }
        d.live.insert(name.clone(), inode.clone());
        st.record(vec![(dir, name, Some(inode))]);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut st = self.state.lock();
        st.check("list", None, false, dir, None)?;
        let d = st.dirs.get(dir).ok_or_else(|| not_found("list", dir))?;
        let mut names: Vec<String> = d.live.keys().cloned().collect();
        for sub in st.dirs.keys() {
            if sub.parent() == Some(dir) {
                if let Some(n) = sub.file_name() {
                    names.push(n.to_string_lossy().into_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.check("create_dir", None, true, dir, None)?;
        let mut cur = Some(dir);
        while let Some(p) = cur {
            if p.as_os_str().is_empty() {
                break;
            }
            st.dirs.entry(p.to_path_buf()).or_default();
            cur = p.parent();
        }
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.check("remove_dir", Some(FaultOp::Remove), true, dir, None)?;
        if !st.dirs.contains_key(dir) {
            return Err(not_found("remove_dir", dir));
        }
        st.dirs.retain(|p, _| !p.starts_with(dir));
        for op in &mut st.dir_log {
            op.changes.retain(|(d, _, _)| !d.starts_with(dir));
        }
        st.dir_log.retain(|op| !op.changes.is_empty());
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.check("sync_dir", Some(FaultOp::SyncDir), true, dir, None)?;
        let d = st.dir_mut("sync_dir", dir)?;
        d.durable = d.live.clone();
        for op in &mut st.dir_log {
            op.changes.retain(|(d, _, _)| d != dir);
        }
        st.dir_log.retain(|op| !op.changes.is_empty());
        Ok(())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let mut st = self.state.lock();
        st.check("stat", None, false, path, None)?;
        Ok(st.dirs.contains_key(path) || st.lookup(path).is_some())
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        let mut st = self.state.lock();
        st.check("stat", None, false, path, None)?;
        Ok(st.dirs.contains_key(path))
    }

    fn lock(&self, path: &Path) -> Result<FileLock> {
        let mut st = self.state.lock();
        st.check("lock", None, false, path, None)?;
        if st.lookup(path).is_none() {
            let (dir, name) = split(path);
            st.dir_mut("lock", &dir)?.live.insert(name, Arc::default());
        }
        if st.locks.contains_key(path) {
            return Err(Error::Locked {
                path: path.to_path_buf(),
            });
        }
        st.next_lock += 1;
        let token = st.next_lock;
        st.locks.insert(path.to_path_buf(), token);
        Ok(FileLock::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
            token,
        }))
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        let mut st = self.state.lock();
        st.check("mmap", None, false, path, None)?;
        let inode = st.lookup(path).ok_or_else(|| not_found("mmap", path))?;
        let ino = inode.lock();
        // Real maps are page-aligned; give the copy the same 16-byte alignment guarantee the
        // readers rely on. `vec!` allocates exactly, so `Bytes::from` keeps the pointer.
        let len = ino.data.len();
        let mut buf = vec![0u8; len + 16];
        let start = buf.as_ptr().align_offset(16);
        buf[start..start + len].copy_from_slice(&ino.data);
        Ok(Bytes::from(buf).slice(start..start + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_bytes_are_lost_on_power_cut() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(&p("/d")).unwrap();
        let f = vfs.create(&p("/d/a")).unwrap();
        f.write_at(0, b"hello").unwrap();
        f.sync_data().unwrap();
        vfs.sync_dir(&p("/d")).unwrap();
        f.write_at(5, b" world").unwrap();
        f.write_at(0, b"J").unwrap();
        vfs.power_cut(PowerCut::DropUnsynced);
        assert!(f.len().is_err(), "handles die with the power");
        assert!(vfs.open(&p("/d/a")).is_err(), "halted until restart");
        vfs.restart();
        assert_eq!(vfs.read_all(&p("/d/a")).unwrap(), b"hello");
    }

    #[test]
    fn unsynced_directory_changes_are_undone() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(&p("/d")).unwrap();
        let f = vfs.create(&p("/d/a")).unwrap();
        f.write_at(0, b"1").unwrap();
        f.sync_data().unwrap();
        vfs.sync_dir(&p("/d")).unwrap();
        let g = vfs.create(&p("/d/b")).unwrap();
        g.write_at(0, b"2").unwrap();
        g.sync_data().unwrap();
        vfs.rename(&p("/d/b"), &p("/d/a")).unwrap();
        assert_eq!(vfs.read_all(&p("/d/a")).unwrap(), b"2");
        vfs.power_cut(PowerCut::DropUnsynced);
        vfs.restart();
        assert_eq!(vfs.read_all(&p("/d/a")).unwrap(), b"1");
        assert!(!vfs.exists(&p("/d/b")).unwrap());
    }

    #[test]
    fn torn_modes_may_keep_a_prefix_of_unsynced_directory_changes() {
        let mut kept_some = false;
        for seed in 0..40 {
            let vfs = SimVfs::new(seed);
            vfs.create_dir_all(&p("/d")).unwrap();
            for name in ["a", "b", "c"] {
                let f = vfs.create(&p(&format!("/d/{name}"))).unwrap();
                f.write_at(0, name.as_bytes()).unwrap();
                f.sync_data().unwrap();
            }
            vfs.power_cut(PowerCut::KeepRandomPrefix);
            vfs.restart();
            let names = vfs.list(&p("/d")).unwrap();
            // Always a prefix, in order: never "b" without "a".
            let expect: Vec<String> = ["a", "b", "c"][..names.len()]
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(names, expect);
            kept_some |= !names.is_empty();
        }
        assert!(kept_some);
    }

    #[test]
    fn truncation_below_synced_length_is_undone() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(&p("/d")).unwrap();
        let f = vfs.create(&p("/d/a")).unwrap();
        vfs.sync_dir(&p("/d")).unwrap();
        f.write_at(0, b"abcdef").unwrap();
        f.sync_data().unwrap();
        f.set_len(2).unwrap();
        f.write_at(2, b"XY").unwrap();
        vfs.power_cut(PowerCut::DropUnsynced);
        vfs.restart();
        assert_eq!(vfs.read_all(&p("/d/a")).unwrap(), b"abcdef");
    }

    #[test]
    fn torn_modes_keep_a_prefix_of_the_tail() {
        for mode in [PowerCut::KeepRandomPrefix, PowerCut::ZeroFillTail] {
            let vfs = SimVfs::new(7);
            vfs.create_dir_all(&p("/d")).unwrap();
            let f = vfs.create(&p("/d/a")).unwrap();
            vfs.sync_dir(&p("/d")).unwrap();
            f.write_at(0, b"base").unwrap();
            f.sync_data().unwrap();
            f.write_at(4, &[9u8; 100]).unwrap();
            vfs.power_cut(mode);
            vfs.restart();
            let data = vfs.read_all(&p("/d/a")).unwrap();
            assert_eq!(&data[..4], b"base");
            let fill = if mode == PowerCut::ZeroFillTail { 0 } else { 9 };
            assert!(data[4..].iter().all(|&b| b == fill));
        }
    }

    #[test]
    fn faults_fail_chosen_operations() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(&p("/d")).unwrap();
        vfs.inject(
            Fault::new(FaultOp::Sync)
                .path_contains("wal")
                .after(1)
                .times(1),
        );
        let f = vfs.create(&p("/d/wal")).unwrap();
        let g = vfs.create(&p("/d/other")).unwrap();
        f.sync_data().unwrap();
        g.sync_data().unwrap();
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
    }

    #[test]
    fn crash_after_ops_cuts_power_at_that_operation() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(&p("/d")).unwrap();
        let f = vfs.create(&p("/d/a")).unwrap();
        vfs.crash_after_ops(2, PowerCut::DropUnsynced);
        f.write_at(0, b"x").unwrap();
        assert!(f.sync_data().is_err());
        assert!(vfs.is_halted());
        vfs.restart();
        assert!(
            !vfs.exists(&p("/d/a")).unwrap(),
            "create was never made durable"
        );
    }

    #[test]
    fn maps_are_aligned_copies() {
        let vfs = SimVfs::new(1);
        vfs.create_dir_all(&p("/d")).unwrap();
        let f = vfs.create(&p("/d/a")).unwrap();
        f.write_at(0, &[5u8; 33]).unwrap();
        let m = vfs.map(&p("/d/a")).unwrap();
        assert_eq!(m.len(), 33);
        assert_eq!(m.as_ptr() as usize % 16, 0);
    }
}
