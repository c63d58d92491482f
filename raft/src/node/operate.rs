//! Operators' actions on a node: snapshots, hash marks and state hashes, backups, flushes
//! and full compactions.

use super::*;

impl<A: Application> RaftNode<A> {
    /// Takes a snapshot now.
    pub async fn trigger_snapshot(&self) -> Result<()> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Stopped(e.to_string()))
    }

    /// Puts a hash mark in the log (on the leader) and returns its index: every node hashes
    /// its state as of that entry (see [`RaftNode::state_hash_at`]).
    pub async fn hash_mark(&self, timeout: Duration) -> Result<u64> {
        let mark = Request::from_bytes(A::hash_mark_command());
        let (index, _) = self.propose(mark, timeout).await?;
        Ok(index)
    }

    /// This node's state hash as of the hash mark at `index`, waiting up to `timeout` for the
    /// node to apply and hash it. Without a mark there, the hash of the current state if the
    /// node has applied exactly `index`.
    pub async fn state_hash_at(&self, index: u64, timeout: Duration) -> Result<u64> {
        let marked = self
            .sm
            .hash_marks()
            .wait(index, || self.applied_index(), timeout)
            .await;
        match marked {
            Err(Error::InvalidArgument(_)) if self.applied_index() == index => {
                let engine = self.engine()?;
                let marks = self.sm.hash_marks_shared();
                tokio::task::spawn_blocking(move || {
                    marks.hash(engine.scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))
                })
                .await
                .map_err(|e| Error::Stopped(e.to_string()))?
                .map_err(|e| self.sm.storage_error(e))
            }
            other => other,
        }
    }

    /// Writes a backup of this node's state into `dir` (which must not exist yet): the same
    /// checkpoint a snapshot is, holding the applied log id and membership.
    pub async fn backup(&self, dir: PathBuf) -> Result<qastore_lsm::checkpoint::CheckpointInfo> {
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.backup(&dir))
            .await
            .map_err(|e| Error::Stopped(e.to_string()))?
    }

    /// Compacts the engine fully (blocking work, done off the runtime).
    pub async fn compact(&self) -> Result<()> {
        let engine = self.engine()?;
        tokio::task::spawn_blocking(move || engine.compact_all())
            .await
            .map_err(|e| Error::Stopped(e.to_string()))?
            .map_err(|e| self.sm.storage_error(e))
    }

    /// Flushes the engine's memtables to tables (blocking work, done off the runtime), so a
    /// restart has less of the log to re-apply.
    pub async fn flush(&self) -> Result<()> {
        let engine = self.engine()?;
        tokio::task::spawn_blocking(move || engine.flush())
            .await
            .map_err(|e| Error::Stopped(e.to_string()))?
            .map_err(Error::from)
    }
}
