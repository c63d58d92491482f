//! What reads wait for: the leader's commit index (ReadIndex, asked of the leader from a
//! follower), this node's applied index, and how stale a follower may be.

use super::*;

impl<A: Application> RaftNode<A> {
    /// Confirms leadership with a quorum and returns the index a linearizable read must see.
    pub async fn read_index(&self) -> Result<u64> {
        let log_id = self
            .raft
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
            .await
            .map_err(|e| match e {
                RaftError::APIError(_) => self.not_leader(),
                RaftError::Fatal(f) => Error::Stopped(f.to_string()),
            })?;
        Ok(log_id.index())
    }

    /// The index a linearizable read served here must wait for: confirmed with a quorum by
    /// this node when it leads, asked of the leader otherwise.
    pub async fn linearizable_index(&self, timeout: Duration) -> Result<u64> {
        if self.raft.is_leader() {
            return tokio::time::timeout(timeout, self.read_index())
                .await
                .map_err(|_| Error::Timeout("leadership was not confirmed in time".into()))?;
        }
        let (raft, network) = (self.raft.clone(), self.network.clone());
        self.read_rounds
            .read_index(timeout, move || {
                let (raft, network) = (raft.clone(), network.clone());
                async move { ask_leader_for_read_index(&raft, &network, timeout).await }
            })
            .await
    }

    /// The last index applied to this node's engine (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.sm.applied().map_or(0, |l| l.index)
    }

    /// The newest index whose data a read of this node's engine may see (the applied index,
    /// or the entry being applied): what a read reports, taken after it ran, as the newest
    /// state it may have seen.
    pub fn visible_index(&self) -> u64 {
        self.sm.visible_index()
    }

    /// Waits until this node has applied `index`, at most `timeout`; returns the applied index.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.raft.metrics();
        loop {
            let applied = self.applied_index();
            if applied >= index {
                return Ok(applied);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!(
                    "this node has applied {applied}, not yet {index}"
                )));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), rx.changed()).await;
        }
    }

    /// How old this node's state may be: on a follower, the time since the newest leader
    /// commit index it has applied was current; on the leader, the time since a quorum last
    /// confirmed it, once it has applied all it committed. `None` when nothing proves it.
    pub fn staleness(&self) -> Option<Duration> {
        let applied = self.applied_index();
        if self.raft.is_leader() {
            let m = self.raft.metrics().borrow_watched().clone();
            let committed = m.local_committed.map_or(0, |c| c.index);
            if applied < committed {
                return None;
            }
            return m
                .last_quorum_acked
                .map(|t| openraft::async_runtime::Instant::elapsed(&*t));
        }
        self.clock.staleness(applied, Instant::now())
    }
}

/// One read-index call to the leader this node knows of.
async fn ask_leader_for_read_index(
    raft: &Raft,
    network: &PeerNetwork,
    timeout: Duration,
) -> Result<u64> {
    let Some((leader, node)) = leader_of(&raft.metrics().borrow_watched()) else {
        return Err(Error::NoLeader(
            "no leader is known: an election may be under way".into(),
        ));
    };
    network
        .client(leader, &node)
        .read_index(timeout)
        .await
        .map_err(|s| match s.code() {
            tonic::Code::FailedPrecondition => {
                Error::NoLeader(format!("node {leader} is no longer the leader"))
            }
            _ => Error::NoLeader(format!(
                "the leader (node {leader}) did not answer: {}",
                s.message()
            )),
        })
}
