//! A running node: Raft and the engine, the gRPC API (`Store` and `Admin`), the HTTP port,
//! the disk quota and the metrics sampler, started and stopped together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qastore_lsm::EngineOptions;
use qastore_proto::v1::admin_server::AdminServer;
use qastore_proto::v1::store_server::StoreServer;
use qastore_raft::{PeerNode, RaftNode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::admin_service::AdminService;
use crate::config::NodeConfig;
use crate::error::ApiError;
use crate::membership::{self, Membership, RemovalNotice};
use crate::peers::ApiPeers;
use crate::quota::DiskQuota;
use crate::store_service::StoreService;
use crate::{http, metrics};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Raft or the storage engine failed to start.
    #[error(transparent)]
    Raft(#[from] qastore_raft::Error),
}

/// What the services share: the node's parts and state.
#[derive(Debug)]
pub struct Node {
    /// Raft and the engine.
    pub raft: RaftNode,
    /// The configuration it runs with.
    pub config: NodeConfig,
    /// The disk quota.
    pub quota: Arc<DiskQuota>,
    /// Connections to other nodes' APIs.
    pub peers: ApiPeers,
    /// Where the gRPC API listens.
    pub api_addr: SocketAddr,
    /// Where the HTTP port listens.
    pub http_addr: SocketAddr,
    /// A leader's word that this node was removed, when its own log has not heard.
    pub removal: RemovalNotice,
    accepting: AtomicBool,
    started: Instant,
}

impl Node {
    /// Refuses new calls once shutdown has begun.
    pub fn check_serving(&self) -> Result<(), ApiError> {
        if self.accepting.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ApiError::Unavailable(format!(
                "node {} is shutting down; use another node",
                self.raft.id()
            )))
        }
    }

    /// What this node is to its cluster (see [`membership`]).
    pub fn membership(&self) -> Membership {
        membership::membership(self)
    }

    /// Refuses calls to a node that is not (or no longer) a member of its cluster.
    pub fn check_member(&self) -> Result<(), ApiError> {
        let id = self.raft.id();
        let cluster = &self.config.cluster_id;
        match self.membership() {
            Membership::Member => Ok(()),
            Membership::Removed(why) => Err(ApiError::NotMember(format!(
                "node {id} is not a member of cluster {cluster:?}: it was removed ({why}); \
                 use another node"
            ))),
            Membership::NotAdded => Err(ApiError::NotMember(format!(
                "node {id} is not a member of cluster {cluster:?}: it has not been added yet; \
                 use another node"
            ))),
        }
    }

    /// How long a write may wait when the client gave no deadline.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms)
    }

    /// How long a read may wait (for the leader, or for this node to catch up) by default.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms)
    }

    /// How long the node has been up.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether this node has a leader it can count on: it is a member, knows a leader, and
    /// has heard from it within the longest election timeout (as the leader: been confirmed by
    /// a quorum that lately). The `qastore_raft_has_leader` gauge and `/readyz` both come from
    /// here, so they always agree; the error says why not.
    pub fn leader_contact(&self) -> Result<(), String> {
        match self.membership() {
            Membership::Member => {}
            Membership::Removed(why) => return Err(format!("removed from the cluster: {why}")),
            Membership::NotAdded => return Err("not a member yet: waiting to be added".into()),
        }
        let s = self.raft.status();
        let Some(leader) = s.leader else {
            return Err("no leader".into());
        };
        let limit = Duration::from_millis(self.config.raft.election_timeout_max_ms);
        let age = self.raft.leader_contact_age();
        match age {
            Some(age) if age <= limit => Ok(()),
            Some(age) if leader == s.node_id => Err(format!(
                "no quorum has confirmed this leader for {} ms",
                age.as_millis()
            )),
            Some(age) => Err(format!("no word from a leader for {} ms", age.as_millis())),
            None if leader == s.node_id => Err("no quorum has confirmed this leader yet".into()),
            None => Err("no word from a leader yet".into()),
        }
    }

    /// Whether the node may take traffic: it has a leader it can count on (see
    /// [`Node::leader_contact`]), its state is no older than the longest election timeout, and
    /// it has applied what it knows is committed (within a small margin).
    pub fn ready(&self) -> Result<(), String> {
        self.leader_contact()?;
        let s = self.raft.status();
        let limit = Duration::from_millis(self.config.raft.election_timeout_max_ms);
        match self.raft.staleness() {
            Some(age) if age <= limit => {}
            Some(age) => {
                return Err(format!(
                    "catching up: its state is {} ms behind the leader's",
                    age.as_millis()
                ))
            }
            None => {
                return Err(
                    "catching up: nothing the leader reported committed is applied here yet".into(),
                )
            }
        }
        let committed = s.committed.unwrap_or(0);
        let applied = s.applied.unwrap_or(0);
        if committed.saturating_sub(applied) > 1000 {
            return Err(format!("catching up: applied {applied} of {committed}"));
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Err("shutting down".into());
        }
        Ok(())
    }
}

/// A node started by [`start`]: stop it with [`RunningNode::shutdown`].
#[derive(Debug)]
pub struct RunningNode {
    node: Arc<Node>,
    stop: tokio::sync::watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

/// The engine options a config asks for.
fn engine_options(config: &NodeConfig) -> EngineOptions {
    let mut o = EngineOptions::default();
    if let Some(b) = config.engine.memtable_bytes {
        o.memtable_bytes = b;
    }
    o
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Starts a node from its configuration: binds its three addresses, opens its data directory
/// and starts Raft, then serves. With `initialize`, a node whose data directory is new forms
/// the cluster of the config's `initial_members` (do it on one node only).
pub async fn start(config: NodeConfig, initialize: bool) -> Result<RunningNode, StartError> {
    config.validate()?;
    #[cfg(feature = "failpoints")]
    {
        // Fault points come from the FAILPOINTS environment variable, for the life of the
        // process.
        std::mem::forget(fail::FailScenario::setup());
    }
    let api_listener = bind(config.api_listen).await?;
    let http_listener = bind(config.http_listen).await?;
    let local = |l: &TcpListener, addr| {
        l.local_addr()
            .map_err(|source| StartError::Listen { addr, source })
    };
    let api_addr = local(&api_listener, config.api_listen)?;
    let http_addr = local(&http_listener, config.http_listen)?;
    let raft = RaftNode::start(qastore_raft::NodeConfig {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id,
        data_dir: config.data_dir.clone(),
        raft_listen: config.raft_listen,
        raft_advertise: config.raft_advertise.clone(),
        api_advertise: config
            .api_advertise
            .clone()
            .unwrap_or_else(|| api_addr.to_string()),
        raft: config.raft.clone(),
        engine: engine_options(&config),
        wal: Default::default(),
        dial_overrides: config.dial_overrides.clone().into_iter().collect(),
    })
    .await?;
    if initialize {
        initialize_cluster(&raft, &config).await?;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let quota = DiskQuota::new(
        config.data_dir.clone(),
        config.disk_quota_bytes,
        config.disk_alarm_ratio,
    );
    quota.spawn(stopped.clone());
    let node = Arc::new(Node {
        raft,
        peers: ApiPeers::new(config.max_request_bytes),
        quota,
        api_addr,
        http_addr,
        removal: RemovalNotice::persisted(&config.data_dir),
        accepting: AtomicBool::new(true),
        started: Instant::now(),
        config,
    });
    let prometheus = metrics::install();
    metrics::spawn_sampler(node.clone(), stopped.clone());
    membership::spawn_watch(node.clone(), stopped.clone());
    let grpc = spawn_grpc(node.clone(), api_listener, stopped.clone());
    let web = http::spawn(node.clone(), http_listener, prometheus, stopped);
    tracing::info!(
        node = node.raft.id(),
        api = %api_addr,
        raft = %node.raft.raft_addr(),
        http = %http_addr,
        "node serving"
    );
    Ok(RunningNode {
        node,
        stop,
        servers: vec![grpc, web],
    })
}

/// Forms the cluster of the config's initial members, if this node's state is new.
async fn initialize_cluster(raft: &RaftNode, config: &NodeConfig) -> Result<(), StartError> {
    let s = raft.status();
    if s.last_log_index.is_some() || !s.voters.is_empty() {
        tracing::info!("the cluster is already formed; nothing to initialize");
        return Ok(());
    }
    let members: BTreeMap<u64, PeerNode> = if config.initial_members.is_empty() {
        BTreeMap::from([(config.node_id, raft.peer_node())])
    } else {
        config
            .initial_members
            .iter()
            .map(|m| (m.id, PeerNode::new(m.raft.clone(), m.api.clone())))
            .collect()
    };
    raft.initialize(members).await?;
    Ok(())
}

fn spawn_grpc(
    node: Arc<Node>,
    listener: TcpListener,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let max = node.config.max_request_bytes;
    let store = StoreServer::new(StoreService::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let admin = AdminServer::new(AdminService::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    tokio::spawn(async move {
        // The builder's TCP options do not reach sockets we accept ourselves: without
        // TCP_NODELAY, a response's frames wait on the client's delayed ACK (~40 ms).
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
            s.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        });
        let result = tonic::transport::Server::builder()
            .layer(tower::layer::layer_fn(crate::rpc_timing::Timed::new))
            .add_service(store)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the API server stopped");
        }
    })
}

impl RunningNode {
    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Stops gracefully: refuses new calls, lets calls in flight finish (up to `grace`),
    /// stops Raft, and flushes the engine so a restart has little log to re-apply.
    pub async fn shutdown(self, grace: Duration) -> Result<(), qastore_raft::Error> {
        let id = self.node.raft.id();
        tracing::info!(node = id, "shutting down");
        self.node.accepting.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        for s in self.servers {
            if tokio::time::timeout(grace, s).await.is_err() {
                tracing::warn!(node = id, "calls still in flight after the grace period");
            }
        }
        let raft = self.node.raft.shutdown().await;
        let flushed = self.node.raft.flush().await;
        tracing::info!(node = id, "node stopped");
        raft.and(flushed)
    }
}
