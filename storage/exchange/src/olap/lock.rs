//! The lock that keeps an engine's Parquet files still while a checkpoint copies them.
//!
//! The engine copies the [`OLAP_DIR`] directory into checkpoints without knowing what it
//! holds, so the exchange, which writes and sweeps those files, keeps them still meanwhile:
//! conversion, retention and checkpoint creation each hold [`lock`] for the engine.
//!
//! There is one lock per engine directory, found through a process-wide table keyed by
//! [`Engine::dir`]. Keying by directory needs no handle threaded through every caller, and is
//! exact: a directory has at most one open engine at a time (its `LOCK` file sees to that), and
//! every user of an engine sees the same `dir()`. Entries live only while someone holds or waits
//! for the lock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use qastore_lsm::Engine;

/// The directory, relative to the engine's, that holds the Parquet partitions.
pub const OLAP_DIR: &str = "olap";

/// The extra directories an exchange engine's checkpoints carry.
pub const CHECKPOINT_DIRS: [&str; 1] = [OLAP_DIR];

#[derive(Default)]
struct DirLock {
    held: Mutex<bool>,
    freed: Condvar,
}

static LOCKS: Mutex<Option<HashMap<PathBuf, Weak<DirLock>>>> = Mutex::new(None);

/// Holds an engine's Parquet files still until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct OlapGuard {
    lock: Arc<DirLock>,
}

impl std::fmt::Debug for OlapGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlapGuard").finish_non_exhaustive()
    }
}

/// Locks a mutex whose holders never leave its data half-changed, so a panic elsewhere does not
/// make it unusable.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits for, then takes, the lock on `engine`'s Parquet files.
pub fn lock(engine: &Engine) -> OlapGuard {
    let lock = {
        let mut table = relock(&LOCKS);
        let table = table.get_or_insert_with(HashMap::new);
        table.retain(|_, l| l.strong_count() > 0);
        match table.get(engine.dir()).and_then(Weak::upgrade) {
            Some(l) => l,
            None => {
                let l = Arc::new(DirLock::default());
                table.insert(engine.dir().to_path_buf(), Arc::downgrade(&l));
                l
            }
        }
    };
    let mut held = relock(&lock.held);
    while *held {
        held = lock
            .freed
            .wait(held)
            .unwrap_or_else(PoisonError::into_inner);
    }
    *held = true;
    drop(held);
    OlapGuard { lock }
}

impl Drop for OlapGuard {
    fn drop(&mut self) {
        *relock(&self.lock.held) = false;
        self.lock.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_lsm::vfs::SimVfs;
    use qastore_lsm::EngineConfig;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn one_holder_per_engine_directory() {
        let vfs = SimVfs::new(1);
        let a = Engine::open(vfs.shared(), "/a", EngineConfig::default()).unwrap();
        let b = Engine::open(vfs.shared(), "/b", EngineConfig::default()).unwrap();
        let held = lock(&a);
        // Another engine's lock is free.
        drop(lock(&b));
        let released = Arc::new(AtomicBool::new(false));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let _again = lock(&a);
                assert!(released.load(Ordering::SeqCst), "taken while held");
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            released.store(true, Ordering::SeqCst);
            drop(held);
            waiter.join().unwrap();
        });
    }
}
