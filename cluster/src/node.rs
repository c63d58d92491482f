//! A node's state and what it answers about itself: Raft and the engine, its configuration,
//! disk quota, peer connections, membership, readiness and default timeouts. The services
//! share one [`Node`]; starting and stopping one is [`crate::server`]'s job.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::NodeConfig;
use crate::error::ApiError;
use crate::membership::{self, Membership, RemovalNotice};
use crate::peers::ApiPeers;
use crate::quota::DiskQuota;
use crate::replicated::ExchangeNode;
use crate::write_groups::WriteGroups;

/// What the services share: the node's parts and state.
#[derive(Debug)]
pub struct Node {
    /// Raft and the engine.
    pub raft: Arc<ExchangeNode>,
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
    /// Proposes clients' writes, alone or gathered into groups.
    pub writes: Arc<WriteGroups>,
    /// The calls this node refused (see [`crate::access::audit`]).
    pub refused: Arc<crate::access::audit::RefusedCalls>,
    /// Open API connections per client, under `max_connections_per_client`.
    pub connections: Arc<qastore_security::ConnectionLimiter>,
    /// The token keys clients' tokens are checked against, when the node takes tokens.
    pub tokens: Option<Arc<qastore_security::TokenKeyFile>>,
    accepting: AtomicBool,
    started: Instant,
}

impl Node {
    /// A node over a started `raft`, serving from now: its API at `api_addr`, its HTTP port at
    /// `http_addr`, a removal already recorded in its data directory taken into account.
    pub fn new(
        raft: Arc<ExchangeNode>,
        config: NodeConfig,
        quota: Arc<DiskQuota>,
        api_addr: SocketAddr,
        http_addr: SocketAddr,
    ) -> Node {
        let tls = raft.config().tls.clone();
        Node {
            writes: WriteGroups::new(
                raft.clone(),
                config.write_groups_in_flight,
                config.write_group_max_writes,
            ),
            raft,
            peers: ApiPeers::new(config.max_request_bytes, tls),
            quota,
            api_addr,
            http_addr,
            removal: RemovalNotice::persisted(&config.data_dir),
            refused: Default::default(),
            connections: qastore_security::ConnectionLimiter::new(
                config.max_connections_per_client,
            ),
            tokens: None,
            accepting: AtomicBool::new(true),
            started: Instant::now(),
            config,
        }
    }

    /// The node, taking clients' tokens checked against `tokens`.
    pub fn with_tokens(mut self, tokens: Option<Arc<qastore_security::TokenKeyFile>>) -> Node {
        self.tokens = tokens;
        self
    }

    /// Refuses new calls from now on: shutdown has begun.
    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

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
        membership::of(&self.raft, &self.removal)
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
        Duration::from_millis(self.config.read_timeout_ms)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::NodeConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_and_writes_each_default_to_their_own_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let any_port = "127.0.0.1:0".parse().unwrap();
        let config = NodeConfig {
            node_id: 1,
            data_dir: dir.path().to_path_buf(),
            api_listen: any_port,
            raft_listen: any_port,
            http_listen: any_port,
            write_timeout_ms: 1_500,
            read_timeout_ms: 700,
            ..NodeConfig::default()
        };
        let running = crate::server::start(config, false).await.unwrap();
        let node = running.node().clone();
        assert_eq!(node.read_timeout(), Duration::from_millis(700));
        assert_eq!(node.write_timeout(), Duration::from_millis(1_500));
        drop(node);
        running.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}
