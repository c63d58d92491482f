//! The write path of a node: admission, proposing a client's request or a command of the
//! application, and waiting for every voter where the client asked for it.

use super::*;

impl<A: Application> RaftNode<A> {
    /// The refusal of a call only the leader takes, naming the leader this node knows of.
    pub(super) fn not_leader(&self) -> Error {
        Error::NotLeader {
            leader: self.leader(),
        }
    }

    /// What a failed proposal tells the caller: where to send it instead, or why it failed.
    pub(super) fn map_write_error(
        &self,
        e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    ) -> Error {
        match e {
            // During a leadership transfer openraft names the target: send writes there rather
            // than back to this node, which still counts itself leader until the target wins.
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => match f.leader_id.zip(f.leader_node) {
                Some(leader) if leader.0 != self.id => Error::NotLeader {
                    leader: Some(leader),
                },
                _ => self.not_leader(),
            },
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => Error::raft(format!(
                "leadership changed before the write committed; it may or may not be applied, retry with the same request id to find out ({f})"
            )),
            other => raft_error(other),
        }
    }

    /// How full the node is now, with `disk` measured by the caller.
    fn load(&self, disk: DiskUse) -> Result<Load> {
        let write_stalled = self.engine()?.write_stalled();
        let (last, applied) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (
                m.last_log_index.unwrap_or(0),
                m.last_applied.map_or(0, |a| a.index),
            )
        };
        Ok(Load {
            disk_used: disk.used,
            disk_quota: disk.quota,
            apply_lag: last.saturating_sub(applied),
            max_apply_lag: self.config.raft.max_apply_lag,
            write_stalled,
        })
    }

    /// Decides whether the node has room for a write now, with `disk` the data directory's use
    /// against its quota; the proof it has is what [`RaftNode::write_admitted`] proposes with.
    pub fn admit(&self, disk: DiskUse) -> Result<Admitted> {
        admission::admit(&self.load(disk)?)?;
        Ok(Admitted(()))
    }

    /// Admits (without a disk quota) and proposes a client's write; see
    /// [`RaftNode::write_admitted`].
    pub async fn write(
        &self,
        request: Request,
        wait_for_all_voters: bool,
        timeout: Duration,
    ) -> Result<WriteOutcome<A::Response>> {
        if !self.raft.is_leader() {
            return Err(self.not_leader());
        }
        let received = Instant::now();
        let admitted = self.admit(DiskUse::UNLIMITED)?;
        self.write_admitted(admitted, request, wait_for_all_voters, timeout, received)
            .await
    }

    /// Proposes a client's write (on the leader) and waits until it is applied, and, with
    /// `wait_for_all_voters`, until every voter holds it or `timeout` passes. The request is
    /// the application's encoded command, checked by the caller as far as it can be without
    /// the state; `received` is when the call arrived, where its timing starts.
    pub async fn write_admitted(
        &self,
        admitted: Admitted,
        request: Request,
        wait_for_all_voters: bool,
        timeout: Duration,
        received: Instant,
    ) -> Result<WriteOutcome<A::Response>> {
        self.propose_admitted(admitted, request, wait_for_all_voters, timeout, &[received])
            .await
    }

    /// Proposes one entry carrying several clients' writes (grouped by the application),
    /// `received` holding when each of their calls arrived; otherwise as
    /// [`RaftNode::write_admitted`] without waiting for every voter. Each write's stages are
    /// counted in the node's histograms; the outcome's are the first write's.
    pub async fn write_group_admitted(
        &self,
        admitted: Admitted,
        request: Request,
        timeout: Duration,
        received: &[Instant],
    ) -> Result<WriteOutcome<A::Response>> {
        self.propose_admitted(admitted, request, false, timeout, received)
            .await
    }

    async fn propose_admitted(
        &self,
        _admitted: Admitted,
        request: Request,
        wait_for_all_voters: bool,
        timeout: Duration,
        received: &[Instant],
    ) -> Result<WriteOutcome<A::Response>> {
        if !self.raft.is_leader() {
            return Err(self.not_leader());
        }
        let proposed = Instant::now();
        let deadline = proposed + timeout;
        let resp = tokio::time::timeout(timeout, self.raft.client_write(request))
            .await
            .map_err(|_| {
                Error::Timeout(
                    "the write was not committed in time; retry with the same request id".into(),
                )
            })?
            .map_err(|e| self.map_write_error(e))?;
        let log_index = resp.log_id.index;
        let answered = Instant::now();
        // The entry's stamps and the voters are the same for every write it carries.
        let voters = self.voters();
        let entry = self.sm.timeline().read(log_index);
        let mut first = None;
        for &received in received {
            let clock = WriteClock {
                received,
                proposed,
                answered,
            };
            let stages = write_stages::write_stages(clock, entry.as_ref(), self.id, &voters);
            stages.record();
            first.get_or_insert(stages);
        }
        let all_acked = if wait_for_all_voters {
            Some(self.wait_all_voters(log_index, deadline).await)
        } else {
            None
        };
        Ok(WriteOutcome {
            log_index,
            term: resp.log_id.leader_id.term,
            response: answer::<A>(&resp.data)?,
            all_acked,
            stages: first.unwrap_or_default(),
        })
    }

    /// The voters of the membership in force.
    fn voters(&self) -> Vec<NodeId> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Waits until every voter holds `index`, or until `deadline`.
    async fn wait_all_voters(&self, index: u64, deadline: Instant) -> bool {
        let mut rx = self.raft.metrics();
        loop {
            let done = {
                let m = rx.borrow_watched();
                let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                match &m.replication {
                    Some(r) => voters.iter().all(|v| {
                        *v == self.id && m.last_log_index.is_some_and(|l| l >= index)
                            || r.get(v)
                                .copied()
                                .flatten()
                                .is_some_and(|l| l.index >= index)
                    }),
                    None => false,
                }
            };
            if done {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if tokio::time::timeout(left, rx.changed()).await.is_err() {
                return false;
            }
        }
    }

    /// Proposes a command of the application's own (on the leader) and waits until it is
    /// applied; returns its log index and answer.
    pub async fn propose(&self, request: Request, timeout: Duration) -> Result<(u64, A::Response)> {
        if !self.raft.is_leader() {
            return Err(self.not_leader());
        }
        let resp = tokio::time::timeout(timeout, self.raft.client_write(request))
            .await
            .map_err(|_| Error::Timeout("the command was not committed in time".into()))?
            .map_err(|e| self.map_write_error(e))?;
        Ok((resp.log_id.index, answer::<A>(&resp.data)?))
    }
}
