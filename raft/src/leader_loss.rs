//! Noticing a dead leader before the election timeout runs out.
//!
//! A follower that heard from its leader within the lease (`election_timeout_max_ms`) refuses to
//! vote for anyone else, and starts an election itself only after the lease plus a random
//! timeout. That keeps a node that was merely cut off from disturbing a healthy leader, but it
//! also means that after a leader crashes, nobody can be elected for a whole lease.
//!
//! A crashed leader's connections close at once. So whenever a connection from a peer closes,
//! a follower asks its leader whether it is still there (`Probe`). If the leader does not
//! answer in time, and no append from it arrived meanwhile, the follower gives up its lease on
//! that leader: it now votes for a candidate with an up-to-date log. After a random pause (so
//! that two followers rarely run at once) it runs for leader itself, starting with a pre-vote.
//! Only followers that lost the leader themselves grant it, so a follower cut off alone still
//! cannot depose a leader the others hear; if the pre-vote fails, the ordinary election timer
//! (now without the lease on top) takes over.
//!
//! Safety does not rest on leases: every linearizable read confirms leadership with a quorum
//! (ReadIndex), and terms and log checks decide every vote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::raft::TransferLeaderRequest;
use openraft::ServerState;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use crate::follower_clock::FollowerClock;
use crate::network::client::PeerNetwork;
use crate::types::{leader_of, NodeId, PeerNode, Raft, Vote};

/// Pause before the second probe, so that a connection being re-established is not taken for a
/// dead leader.
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// Watches for the loss of this node's leader (see the module documentation).
pub struct LeaderLossDetector {
    raft: Raft,
    network: PeerNetwork,
    clock: Arc<FollowerClock>,
    probe_timeout: Duration,
    campaign_jitter: Duration,
    wake: Arc<Notify>,
    lost: AtomicU64,
}

impl LeaderLossDetector {
    /// A detector for `raft`, probing through `network` with `probe_timeout` per attempt, that
    /// learns of appends from `clock`, and runs for leader after a random pause of up to
    /// `campaign_jitter` once it gave the leader up. Its checks run one at a time on a task of
    /// their own; must be called within a tokio runtime.
    pub fn new(
        raft: Raft,
        network: PeerNetwork,
        clock: Arc<FollowerClock>,
        probe_timeout: Duration,
        campaign_jitter: Duration,
    ) -> Arc<Self> {
        let wake = Arc::new(Notify::new());
        let detector = Arc::new(LeaderLossDetector {
            raft,
            network,
            clock,
            probe_timeout,
            campaign_jitter,
            wake: wake.clone(),
            lost: AtomicU64::new(0),
        });
        let weak: Weak<Self> = Arc::downgrade(&detector);
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                this.check().await;
            }
        });
        detector
    }

    /// A connection from a peer closed: find out, in the background, whether the leader is
    /// gone. A close while a check runs is remembered, and checked again after it, so a probe
    /// that started before the leader died cannot hide its death.
    pub fn connection_closed(&self) {
        self.wake.notify_one();
    }

    /// How often this node gave up on a leader.
    pub fn leaders_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The leader this node follows, its addresses and the vote it holds for it; `None` unless
    /// this node is a follower of an elected leader.
    fn following(&self) -> Option<(NodeId, PeerNode, Vote)> {
        let m = self.raft.metrics().borrow_watched().clone();
        let (leader, node) = leader_of(&m)?;
        let follower = m.state == ServerState::Follower && leader != m.id && m.vote.committed;
        follower.then_some((leader, node, m.vote))
    }

    /// Whether this node still follows `leader` under the same `vote`.
    fn still_following(&self, leader: NodeId, vote: &Vote) -> bool {
        self.following()
            .is_some_and(|(l, _, v)| l == leader && v == *vote)
    }

    async fn check(&self) {
        let since = Instant::now();
        let Some((leader, node, vote)) = self.following() else {
            return;
        };
        let term = vote.leader_id.term;
        let client = self.network.client(leader, &node);
        let heard_since = || self.clock.last_contact().is_some_and(|t| t > since);
        let mut last_error = None;
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            match client.probe(self.probe_timeout).await {
                Ok(_) => return,
                Err(status) => last_error = Some(status),
            }
            if heard_since() {
                return;
            }
        }
        if !self.still_following(leader, &vote) || heard_since() {
            return;
        }
        tracing::warn!(
            leader,
            term,
            reason = %last_error.map(|s| s.message().to_string()).unwrap_or_default(),
            "the leader does not answer: giving up the lease on it"
        );
        // A transfer "from" the current leader to the leader itself only drops this node's
        // lease on it.
        let req = TransferLeaderRequest::new(vote, leader, None);
        if let Err(e) = self.raft.handle_transfer_leader(req).await {
            tracing::warn!(error = %e, "could not drop the lease on the lost leader");
            return;
        }
        self.lost.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.jitter()).await;
        // Someone else may have started an election meanwhile (our vote changed): let it run.
        if !self.still_following(leader, &vote) {
            return;
        }
        tracing::info!(lost_leader = leader, term, "running for leader");
        if let Err(e) = self.raft.trigger().elect(true).await {
            tracing::warn!(error = %e, "could not start an election");
        }
    }

    fn jitter(&self) -> Duration {
        let max = self.campaign_jitter.as_micros() as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ self.raft.metrics().borrow_watched().id;
        Duration::from_micros(SmallRng::seed_from_u64(seed).random_range(0..max))
    }
}

impl Drop for LeaderLossDetector {
    fn drop(&mut self) {
        // Let the checking task see that the detector is gone.
        self.wake.notify_one();
    }
}
