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
use crate::network::killable::KillableIo;
use crate::network::{
    AnswerDeadline, NetworkConfig, PeerGuard, PeerNetwork, PeerService, PeerStats,
};
use crate::read_index_batch::ReadIndexBatch;
use crate::reply::Reply;
use crate::state_machine::StateMachine;
use crate::types::{leader_of, NodeId, PeerNode, Raft, TypeConfig};

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
    /// Opens the node's data directory and the application on its engine, starts Raft and the
    /// peer server, and the background tasks. A new node waits to be initialized or added to
    /// a cluster.
    pub async fn start(config: RaftNodeConfig) -> Result<RaftNode<A>> {
        let vfs: VfsRef = OsVfs::shared();
        Self::start_with_vfs(config, vfs).await
    }

    /// Like [`RaftNode::start`], with every file going through `vfs`.
    pub async fn start_with_vfs(config: RaftNodeConfig, vfs: VfsRef) -> Result<RaftNode<A>> {
        let openraft_config = Arc::new(config.raft.openraft_config(&config.cluster_id)?);
        let span = tracing::info_span!("node", id = config.node_id);
        let _enter = span.enter();
        let (wal, sm, app) = {
            let (vfs, config) = (vfs.clone(), config.clone());
            tokio::task::spawn_blocking(move || -> Result<(Wal, StateMachine, Arc<A>)> {
                identity::claim(
                    vfs.as_ref(),
                    &config.data_dir,
                    &config.cluster_id,
                    config.node_id,
                )?;
                let wal = Wal::open(vfs.clone(), config.data_dir.join("wal"), config.wal.clone())?;
                let (sm, app) =
                    StateMachine::open::<A>(vfs, &config.data_dir, config.engine.clone())?;
                crate::recovery::check_engine_against_log(&config.data_dir, &sm, &wal)?;
                sm.verify_engine()?;
                Ok((wal, sm, app))
            })
            .await
            .map_err(|e| Error::Stopped(e.to_string()))??
        };
        let wal = Arc::new(wal);
        let listener = TcpListener::bind(config.raft_listen)
            .await
            .map_err(|e| Error::Io {
                what: format!("listening on {}", config.raft_listen),
                source: e,
            })?;
        let raft_addr = listener.local_addr().map_err(|e| Error::Io {
            what: "reading the listening address".into(),
            source: e,
        })?;
        let network = PeerNetwork::new(
            &config.cluster_id,
            config.node_id,
            NetworkConfig {
                connect_timeout: config.raft.rpc_timeout(),
                answer_deadline: AnswerDeadline {
                    base: config.raft.rpc_timeout(),
                    min_bytes_per_sec: config.raft.min_replication_bytes_per_sec,
                },
                chunk_timeout: Duration::from_millis(config.raft.snapshot_chunk_timeout_ms),
                chunk_bytes: config.raft.snapshot_chunk_bytes,
                dial_overrides: config.dial_overrides.clone(),
            },
        );
        let caller = crate::repair::Caller {
            cluster_id: config.cluster_id.clone(),
            node_id: config.node_id,
        };
        crate::repair::repair_at_start(&sm, &wal, &caller, &config.dial_overrides).await?;
        let raft = Raft::new(
            config.node_id,
            openraft_config,
            network.clone(),
            LogStore::new(wal.clone()).with_max_batch_bytes(config.raft.max_payload_bytes),
            sm.clone(),
        )
        .await
        .map_err(|e| Error::Stopped(e.to_string()))?;
        sm.set_repairer(
            caller,
            crate::repair::running_peers(
                raft.clone(),
                config.node_id,
                config.dial_overrides.clone(),
            ),
        );
        let clock = Arc::new(FollowerClock::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let leader_loss = config.raft.leader_probe_timeout().map(|t| {
            // Wide enough that two followers rarely run together, short next to a lease.
            let jitter = Duration::from_millis((config.raft.election_timeout_min_ms / 2).min(250));
            LeaderLossDetector::new(raft.clone(), network.clone(), clock.clone(), t, jitter)
        });
        let service = PeerService::new(
            raft.clone(),
            sm.checkpoints().clone(),
            clock.clone(),
            Duration::from_millis(config.raft.snapshot_chunk_timeout_ms),
        )
        .into_server(PeerGuard::new(&config.cluster_id, config.node_id));
        let mut server_stop = stopped.clone();
        let conn_stop = stopped.clone();
        let detector = leader_loss.clone();
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |s| {
                s.map(|s| {
                    let _ = s.set_nodelay(true);
                    let io = KillableIo::new(s, conn_stop.clone());
                    match &detector {
                        Some(detector) => {
                            let detector = detector.clone();
                            io.on_close(Box::new(move || detector.connection_closed()))
                        }
                        None => io,
                    }
                })
            });
            let result = tonic::transport::Server::builder()
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = server_stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "the peer server stopped");
            }
        });
        tracing::info!(%raft_addr, data_dir = %config.data_dir.display(), "node started");
        let node = RaftNode {
            id: config.node_id,
            config,
            raft,
            sm,
            app,
            wal,
            clock,
            leader_loss,
            read_rounds: ReadIndexBatch::new(),
            network,
            raft_addr,
            stop,
            tasks: Mutex::new(vec![server]),
        };
        let maintenance = maintenance::spawn(
            node.raft.clone(),
            node.sm.clone(),
            node.wal.clone(),
            node.config.raft.clone(),
            stopped.clone(),
        );
        let repair_watch = crate::repair::spawn_watch(node.sm.clone(), stopped);
        node.tasks.lock().extend([maintenance, repair_watch]);
        Ok(node)
    }

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
        let m = self.raft.metrics().borrow_watched().clone();
        m.membership_config.log_id().as_ref().map(|l| l.index)
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

    fn not_leader(&self) -> Error {
        Error::NotLeader {
            leader: self.leader(),
        }
    }

    fn map_write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Error {
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
        let m = self.raft.metrics().borrow_watched().clone();
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map_or(0, |a| a.index);
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
        let admitted = self.admit(DiskUse::UNLIMITED)?;
        self.write_admitted(admitted, request, wait_for_all_voters, timeout)
            .await
    }

    /// Proposes a client's write (on the leader) and waits until it is applied, and, with
    /// `wait_for_all_voters`, until every voter holds it or `timeout` passes. The request is
    /// the application's encoded command, checked by the caller as far as it can be without
    /// the state.
    pub async fn write_admitted(
        &self,
        _admitted: Admitted,
        request: Request,
        wait_for_all_voters: bool,
        timeout: Duration,
    ) -> Result<WriteOutcome<A::Response>> {
        if !self.raft.is_leader() {
            return Err(self.not_leader());
        }
        let deadline = Instant::now() + timeout;
        let resp = tokio::time::timeout(timeout, self.raft.client_write(request))
            .await
            .map_err(|_| {
                Error::Timeout(
                    "the write was not committed in time; retry with the same request id".into(),
                )
            })?
            .map_err(|e| self.map_write_error(e))?;
        let log_index = resp.log_id.index;
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
        })
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

    /// Takes a snapshot now.
    pub async fn trigger_snapshot(&self) -> Result<()> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Stopped(e.to_string()))
    }

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
                tokio::task::spawn_blocking(move || {
                    crate::state_machine::replica_hash(
                        engine.scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
                    )
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

    /// Stops the node: Raft, the peer server and the background tasks. The data directory is
    /// left as it is; starting again resumes from it.
    pub async fn shutdown(&self) -> Result<()> {
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
        tracing::info!(node = self.id, "node stopped");
        r.map_err(|e| Error::Stopped(e.to_string()))
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
