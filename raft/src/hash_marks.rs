//! State hashes taken at hash marks: a [`crate::SystemCommand::HashMark`] entry makes every node
//! take a point-in-time view of its engine right after applying it, and hash that view on a
//! thread of its own, so replicas can be compared at one exact log index while writes continue
//! and without holding up apply. The hash covers the data, not where it sits in the log (see
//! [`crate::state_machine::replica_hash`]), so a cluster restored from a backup hashes like
//! the one the backup came from.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use qastore_lsm::EngineIter;

use crate::error::{Error, Result};

/// How many finished hashes a node remembers.
const KEEP: usize = 64;

#[derive(Debug, Clone)]
enum Mark {
    Hashing,
    Done(std::result::Result<u64, String>),
}

/// The hash marks this node applied, and their hashes.
#[derive(Debug)]
pub struct HashMarks {
    marks: Mutex<BTreeMap<u64, Mark>>,
    changed: tokio::sync::watch::Sender<u64>,
    /// Key prefixes the application keeps out of the hash.
    unhashed: Vec<Vec<u8>>,
}

impl HashMarks {
    /// Marks whose hashes leave out the keys under `unhashed`.
    pub fn new(unhashed: Vec<Vec<u8>>) -> Self {
        HashMarks {
            marks: Mutex::new(BTreeMap::new()),
            changed: tokio::sync::watch::channel(0).0,
            unhashed,
        }
    }

    /// The replica hash of `view` (see [`crate::state_machine::replica_hash`]).
    pub fn hash(&self, view: EngineIter) -> qastore_lsm::Result<u64> {
        crate::state_machine::replica_hash(view, &self.unhashed)
    }

    /// Hashes `view`, the engine as of the mark at `index`, on a thread of its own.
    pub fn start(self: &std::sync::Arc<Self>, index: u64, view: EngineIter) {
        self.marks.lock().insert(index, Mark::Hashing);
        let marks = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hash-mark-{index}"))
            .spawn(move || {
                let result = marks.hash(view).map_err(|e| e.to_string());
                marks.finish(index, result);
            });
        if let Err(e) = spawned {
            self.finish(index, Err(format!("starting the hashing thread: {e}")));
        }
    }

    fn finish(&self, index: u64, result: std::result::Result<u64, String>) {
        let mut marks = self.marks.lock();
        marks.insert(index, Mark::Done(result));
        while marks.len() > KEEP {
            marks.pop_first();
        }
        drop(marks);
        self.changed.send_modify(|n| *n += 1);
    }

    /// The hash at the mark at `index`, waiting up to `timeout` for it. `applied` tells how far
    /// this node has applied: past the index with no mark means it never applied that mark
    /// (it is not one, or the node skipped it through a snapshot).
    pub async fn wait(
        &self,
        index: u64,
        applied: impl Fn() -> u64,
        timeout: Duration,
    ) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            let seen_applied = applied();
            match self.marks.lock().get(&index) {
                Some(Mark::Done(Ok(h))) => return Ok(*h),
                Some(Mark::Done(Err(e))) => {
                    return Err(Error::raft(format!("hashing the state at {index}: {e}")))
                }
                Some(Mark::Hashing) => {}
                None if seen_applied >= index => {
                    return Err(Error::InvalidArgument(format!(
                    "field index: this node holds no hash mark at {index} (applied {seen_applied})"
                )))
                }
                None => {}
            }
            // Apply progress does not wake us: poll it while waiting for the mark.
            let step = Duration::from_millis(20);
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "the state hash at {index} is not ready (applied {seen_applied})"
                )));
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + step),
                rx.changed(),
            )
            .await;
        }
    }
}
