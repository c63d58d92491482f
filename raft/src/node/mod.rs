//! One replicated node of an application: its data directory, Raft, the peer server, and the
//! background tasks (snapshots, upkeep, repair), with the API the node's client services use.
//!
//! ```text
//! <data dir>/NODE          cluster id and node id (see `identity`)
//! <data dir>/wal/          the Raft log
//! <data dir>/engine/       the storage engine (switched wholesale by snapshots)
//! <data dir>/checkpoints/  snapshots
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use parking_lot::Mutex;
use qastore_lsm::vfs::{OsVfs, VfsRef};
use qastore_lsm::wal::{Wal, WalConfig};
use qastore_lsm::{Engine, EngineConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::admission::{self, Admitted, DiskUse, Load};
use crate::application::Application;
use crate::command::Request;
use crate::config::RaftConfig;
use crate::error::{Error, Result};
use crate::follower_clock::FollowerClock;
use crate::identity;
use crate::leader_loss::LeaderLossDetector;
use crate::log_store::LogStore;
use crate::maintenance;
use crate::network::append_port::AppendPort;
use crate::network::killable::KillableIo;
use crate::network::{
    AnswerDeadline, NetworkConfig, PeerGuard, PeerNetwork, PeerService, PeerStats,
};
use crate::read_index_batch::ReadIndexBatch;
use crate::reply::Reply;
use crate::state_machine::StateMachine;
use crate::types::{leader_of, NodeId, PeerNode, Raft, TypeConfig};
use crate::write_stages::{self, WriteClock, WriteStages};

mod membership;
mod operate;
mod read;
mod start;
mod write;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// The cluster this node belongs to (every peer call carries it).
    pub cluster_id: String,
    /// This node's id: unique in the cluster, never reused.
    pub node_id: NodeId,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Where the peer service listens (port 0 picks a free port).
    pub raft_listen: SocketAddr,
    /// The address peers use to reach this node; by default the address it listens on.
    pub raft_advertise: Option<String>,
    /// The address of this node's client API, as given to clients.
    pub api_advertise: String,
    /// Raft settings.
    pub raft: RaftConfig,
    /// Storage engine settings.
    pub engine: EngineConfig,
    /// Write-ahead log settings.
    pub wal: WalConfig,
    /// Addresses to dial instead of peers' advertised Raft addresses (advertised -> dialed).
    pub dial_overrides: std::collections::HashMap<String, String>,
    /// Mutual TLS on the peer port and for calls to peers; `None`: plain gRPC.
    pub tls: Option<Arc<qastore_security::tls::ReloadingTls>>,
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes writes and replicates them.
    Leader,
    /// Follows the leader; may vote.
    Follower,
    /// Asking for votes.
    Candidate,
    /// Receives the log but does not vote.
    Learner,
    /// Stopped.
    Shutdown,
}

/// A snapshot of a node's state, for operators and for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub node_id: NodeId,
    /// Its role.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The last index in its log.
    pub last_log_index: Option<u64>,
    /// The last index it knows is committed.
    pub committed: Option<u64>,
    /// The last index applied to its engine.
    pub applied: Option<u64>,
    /// The last index its latest snapshot covers.
    pub snapshot: Option<u64>,
    /// The last index removed from its log.
    pub purged: Option<u64>,
    /// Voters of the current membership.
    pub voters: BTreeSet<NodeId>,
    /// Learners of the current membership.
    pub learners: BTreeSet<NodeId>,
    /// Every member's addresses.
    pub nodes: BTreeMap<NodeId, PeerNode>,
    /// On the leader: the last index each member is known to hold.
    pub replication: BTreeMap<NodeId, Option<u64>>,
}

/// What a write got; `R` is the application's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome<R> {
    /// The log index it was committed at.
    pub log_index: u64,
    /// The term it was committed in.
    pub term: u64,
    /// What applying it answered.
    pub response: R,
    /// When asked to wait for every voter: whether every voter held it within the deadline.
    pub all_acked: Option<bool>,
    /// Where its time went at this node, the leader (also counted in the node's histograms).
    pub stages: WriteStages,
}

/// One running node, replicating the application `A`.
pub struct RaftNode<A> {
    id: NodeId,
    config: RaftNodeConfig,
    raft: Raft,
    sm: StateMachine,
    app: Arc<A>,
    wal: Arc<Wal>,
    clock: Arc<FollowerClock>,
    leader_loss: Option<Arc<LeaderLossDetector>>,
    read_rounds: ReadIndexBatch,
    network: PeerNetwork,
    raft_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<A> std::fmt::Debug for RaftNode<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("raft_addr", &self.raft_addr)
            .finish()
    }
}

fn raft_error<E: std::error::Error + Send + Sync + 'static>(e: RaftError<TypeConfig, E>) -> Error {
    match e {
        RaftError::Fatal(f) => Error::Stopped(f.to_string()),
        RaftError::APIError(e) => Error::raft(e),
    }
}

/// The application's answer in a reply; a reply of another type is an internal error.
fn answer<A: Application>(reply: &Reply) -> Result<A::Response> {
    reply.get::<A::Response>().ok_or_else(|| {
        Error::Internal(format!(
            "the state machine answered {reply:?}, not a {}",
            std::any::type_name::<A::Response>()
        ))
    })
}

impl<A: Application> RaftNode<A> {
    /// The application this node replicates.
    pub fn app(&self) -> &Arc<A> {
        &self.app
    }

    /// How often this node gave up on a leader that stopped answering (see
    /// [`crate::leader_loss`]).
    pub fn leaders_lost(&self) -> u64 {
        self.leader_loss.as_ref().map_or(0, |d| d.leaders_lost())
    }

    /// What this node's calls to each peer saw: append streams opened and failed, and log
    /// entries a peer lost after acknowledging them.
    pub fn peer_stats(&self) -> BTreeMap<NodeId, PeerStats> {
        self.network.peer_stats()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the peer service listens on.
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_addr
    }

    /// How peers reach this node and clients its API.
    pub fn peer_node(&self) -> PeerNode {
        PeerNode::new(
            self.config
                .raft_advertise
                .clone()
                .unwrap_or_else(|| self.raft_addr.to_string()),
            self.config.api_advertise.clone(),
        )
    }

    /// The live engine (for reads; fails while a snapshot is installed).
    pub fn engine(&self) -> Result<Arc<Engine>> {
        self.sm.engine()
    }

    /// The state machine.
    pub fn state_machine(&self) -> &StateMachine {
        &self.sm
    }

    /// What this follower was told of the leader's commit index, and when.
    pub fn follower_clock(&self) -> &FollowerClock {
        &self.clock
    }

    /// The write-ahead log's counters.
    pub fn wal_stats(&self) -> qastore_lsm::wal::WalStats {
        self.wal.stats()
    }

    /// The node's current state.
    pub fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        NodeStatus {
            node_id: self.id,
            role: match m.state {
                ServerState::Leader => Role::Leader,
                ServerState::Follower => Role::Follower,
                ServerState::Candidate => Role::Candidate,
                ServerState::Learner => Role::Learner,
                ServerState::Shutdown => Role::Shutdown,
            },
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed: m.local_committed.map(|c| c.index),
            applied: m.last_applied.map(|a| a.index),
            snapshot: m.snapshot.map(|s| s.index),
            purged: m.purged.map(|p| p.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
            replication: m
                .replication
                .unwrap_or_default()
                .into_iter()
                .map(|(id, l)| (id, l.map(|l| l.index)))
                .collect(),
        }
    }

    /// The log index of the membership this node goes by; `None` before it has any (a new
    /// node not yet added to a cluster).
    pub fn membership_index(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        m.membership_config.log_id().as_ref().map(|l| l.index)
    }

    /// Whether the membership this node goes by lists it, and that membership's log index:
    /// what every call checks, read in place rather than through a whole [`RaftNode::status`].
    pub fn listed_in_membership(&self) -> (bool, Option<u64>) {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let listed = m
            .membership_config
            .membership()
            .get_node(&self.id)
            .is_some();
        (
            listed,
            m.membership_config.log_id().as_ref().map(|l| l.index),
        )
    }

    /// How long since this node last heard that its leadership or its leader is current: on
    /// the leader, since a quorum last acknowledged it; on any other node, since the last
    /// append from the leader it follows. `None` when it never has.
    pub fn leader_contact_age(&self) -> Option<Duration> {
        if self.raft.is_leader() {
            let m = self.raft.metrics().borrow_watched().clone();
            return m
                .last_quorum_acked
                .map(|t| openraft::async_runtime::Instant::elapsed(&*t));
        }
        self.clock.last_contact().map(|t| t.elapsed())
    }

    /// Waits until some node is leader (as this node sees it) and returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.raft.metrics();
        loop {
            if let Some(l) = rx.borrow_watched().current_leader {
                return Ok(l);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("no leader elected".into()));
            }
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }

    /// The leader as this node knows it, with its addresses.
    pub fn leader(&self) -> Option<(NodeId, PeerNode)> {
        leader_of(&self.raft.metrics().borrow_watched())
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The node's configuration.
    pub fn config(&self) -> &RaftNodeConfig {
        &self.config
    }

    /// Stops the node: Raft, the peer server and the background tasks, then closes the engine
    /// (waiting for a snapshot still being built). The data directory is left as it is;
    /// starting again resumes from it, re-applying what was not flushed.
    pub async fn shutdown(&self) -> Result<()> {
        self.stop_all(false).await
    }

    /// Like [`RaftNode::shutdown`], flushing the engine before it is closed, so a restart has
    /// little of the log to re-apply.
    pub async fn shutdown_flushed(&self) -> Result<()> {
        self.stop_all(true).await
    }

    async fn stop_all(&self, flush: bool) -> Result<()> {
        let _ = self.stop.send(true);
        self.sm.damage().stop();
        let t0 = Instant::now();
        let r = self.raft.shutdown().await;
        tracing::info!(node = self.id, elapsed = ?t0.elapsed(), "raft stopped");
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock());
        for (i, t) in tasks.into_iter().enumerate() {
            let _ = t.await;
            tracing::info!(node = self.id, task = i, elapsed = ?t0.elapsed(), "task stopped");
        }
        // A snapshot build that Raft started may still be writing its checkpoint.
        if let Err(e) = self.sm.close(flush).await {
            tracing::warn!(node = self.id, error = %e, "closing the engine");
        }
        tracing::info!(node = self.id, "node stopped");
        r.map_err(|e| Error::Stopped(e.to_string()))
    }
}
