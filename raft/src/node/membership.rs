//! Changing who is in the cluster: initializing it, adding learners, changing voters,
//! removing nodes, handing leadership over.

use super::*;

impl<A: Application> RaftNode<A> {
    /// Makes this (new) node the first member of a cluster of `members` (which must include
    /// it). Call it once, on one node.
    pub async fn initialize(&self, members: BTreeMap<NodeId, PeerNode>) -> Result<()> {
        if !members.contains_key(&self.id) {
            return Err(Error::InvalidArgument(format!(
                "field members: must include this node ({})",
                self.id
            )));
        }
        self.raft.initialize(members).await.map_err(raft_error)
    }

    /// Adds `id` as a learner (it receives the log but does not vote) and returns the log index
    /// of the membership entry that added it. With `catch_up`, waits until it holds every entry
    /// up to that one (through a snapshot if the log was purged), or fails with a timeout after
    /// that long (it stays a learner). Holding is not applying: the learner's own applied index
    /// tells when it has caught up.
    pub async fn add_learner(
        &self,
        id: NodeId,
        node: PeerNode,
        catch_up: Option<Duration>,
    ) -> Result<u64> {
        let resp = self
            .raft
            .add_learner(id, node, false)
            .await
            .map_err(|e| self.map_write_error(e))?;
        let target = resp.log_id.index;
        let Some(timeout) = catch_up else {
            return Ok(target);
        };
        let deadline = Instant::now() + timeout;
        let mut rx = self.raft.metrics();
        loop {
            let matched = rx
                .borrow_watched()
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index);
            if matched.is_some_and(|m| m >= target) {
                return Ok(target);
            }
            if !self.raft.is_leader() {
                return Err(self.not_leader());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!(
                    "learner {id} has not caught up (holds {matched:?}, needs {target})"
                )));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), rx.changed()).await;
        }
    }

    /// Makes `voters` the voting members (every one must already be a member; the others stay
    /// as learners).
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<()> {
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
            .await
            .map(|_| ())
            .map_err(|e| self.map_write_error(e))
    }

    /// Removes `id` from the cluster (voter or learner). It can never rejoin under this id.
    pub async fn remove_node(&self, id: NodeId) -> Result<()> {
        let status = self.status();
        if status.voters.contains(&id) {
            let voters: BTreeSet<NodeId> =
                status.voters.iter().copied().filter(|v| *v != id).collect();
            if voters.is_empty() {
                return Err(Error::InvalidArgument(
                    "field node_id: cannot remove the last voter".into(),
                ));
            }
            self.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
                .await
                .map_err(|e| self.map_write_error(e))?;
        }
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map(|_| ())
            .map_err(|e| self.map_write_error(e))
    }

    /// Asks the leader (this node) to hand leadership to `to`, which must be a caught-up voter.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<()> {
        let status = self.status();
        if status.role != Role::Leader {
            return Err(self.not_leader());
        }
        if !status.voters.contains(&to) {
            return Err(Error::InvalidArgument(format!(
                "field to: node {to} is not a voter"
            )));
        }
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| Error::Stopped(e.to_string()))
    }
}
