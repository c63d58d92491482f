//! Starting and stopping a node: binds its addresses, starts Raft and the engine, builds the
//! gRPC services (`Store` and `Admin`) and the HTTP port, and runs the disk quota, the metrics
//! sampler, the membership watch and the exchange's scheduled system commands beside them,
//! until [`RunningNode::shutdown`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use qastore_proto::frames::feed_server::FeedServer;
use qastore_proto::v1::admin_server::AdminServer;
use qastore_proto::v1::store_server::StoreServer;
use qastore_raft::PeerNode;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::admin_service::AdminService;
use crate::config::NodeConfig;
use crate::feed::FeedService;
use crate::node::Node;
use crate::quota::DiskQuota;
use crate::replicated::ExchangeNode;
use crate::store_service::StoreService;
use crate::{http, membership_watch, metrics, schedule};

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
    /// The TLS files are unusable, or name another node.
    #[error("tls: {0}")]
    Tls(String),
}

/// The verifier of clients' tokens, when the config names the token key.
fn load_tokens(
    config: &NodeConfig,
) -> Result<Option<Arc<qastore_security::TokenKeyFile>>, StartError> {
    let Some(path) = &config.tls.token_key_file else {
        return Ok(None);
    };
    let keys = qastore_security::TokenKeyFile::open(&config.cluster_id, path)
        .map_err(|e| StartError::Tls(format!("token_key_file: {e}")))?;
    tracing::info!(
        key = %path.display(),
        keys = keys.key_count(),
        "clients may present a signed token instead of a certificate"
    );
    Ok(Some(Arc::new(keys)))
}

/// Loads the node's TLS files, if it has any, and checks that its certificate names this node
/// of this cluster (a node started with another node's files would be refused by every peer).
fn load_tls(
    config: &NodeConfig,
) -> Result<Option<Arc<qastore_security::tls::ReloadingTls>>, StartError> {
    let Some(files) = config.tls.files(config.node_id) else {
        tracing::warn!(
            insecure = true,
            "TLS is off: the client API and peer ports speak plain gRPC and take calls from \
             anyone who reaches them (set [tls] in the config; `qastore certs` makes the files)"
        );
        return Ok(None);
    };
    let tls = qastore_security::tls::ReloadingTls::new(files)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let expected = qastore_security::Identity::Node {
        cluster: config.cluster_id.clone(),
        node_id: config.node_id,
    };
    let creds = tls.credentials();
    let cert = creds.certificate();
    if cert.identity.as_ref() != Some(&expected) {
        return Err(StartError::Tls(format!(
            "{} names {}, not {expected} (issue one with `qastore certs node --node-id {}`)",
            tls.files().cert.display(),
            cert.identity
                .as_ref()
                .map_or_else(|| cert.subject.clone(), |id| id.to_string()),
            config.node_id
        )));
    }
    tracing::info!(
        cert = %tls.files().cert.display(),
        days_left = cert.days_left(time::OffsetDateTime::now_utc()),
        "mutual TLS on the client API and peer ports"
    );
    Ok(Some(tls))
}

/// A node started by [`start`]: stop it with [`RunningNode::shutdown`].
#[derive(Debug)]
pub struct RunningNode {
    node: Arc<Node>,
    stop: tokio::sync::watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
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
        // process. A scenario holds a process-wide lock while it lives: set it up once, or a
        // second node started in the same process (tests) would wait for it forever.
        static SETUP: std::sync::Once = std::sync::Once::new();
        SETUP.call_once(|| std::mem::forget(fail::FailScenario::setup()));
    }
    let api_listener = bind(config.api_listen).await?;
    let http_listener = bind(config.http_listen).await?;
    let local = |l: &TcpListener, addr| {
        l.local_addr()
            .map_err(|source| StartError::Listen { addr, source })
    };
    let api_addr = local(&api_listener, config.api_listen)?;
    let http_addr = local(&http_listener, config.http_listen)?;
    let tls = load_tls(&config)?;
    let tokens = load_tokens(&config)?;
    let raft = Arc::new(ExchangeNode::start(config.raft_node_config(api_addr, tls.clone())).await?);
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
    raft.app().live().set_limits(
        config.feed.live_buffer_events,
        config.feed.live_buffer_bytes,
    );
    let node = Arc::new(Node::new(raft, config, quota, api_addr, http_addr).with_tokens(tokens));
    let prometheus = metrics::install();
    metrics::spawn_sampler(node.clone(), stopped.clone());
    membership_watch::spawn(node.clone(), stopped.clone());
    let scheduled = schedule::spawn(node.raft.clone(), stopped.clone());
    let mut gate = crate::access::Gate::new(
        &node.config.cluster_id,
        node.raft.id(),
        tls.is_some(),
        Arc::new(crate::access::table::ReplicatedRoles::new(
            node.raft.clone(),
        )),
        node.refused.clone(),
    );
    if let Some(tokens) = &node.tokens {
        gate = gate.with_tokens(tokens.clone());
    }
    let gate = Arc::new(gate);
    let grpc = spawn_grpc(
        node.clone(),
        api_listener,
        tls.clone(),
        gate.clone(),
        stopped.clone(),
    );
    let web = http::spawn(node.clone(), http_listener, prometheus, tls, gate, stopped);
    tracing::info!(
        node = node.raft.id(),
        api = %api_addr,
        raft = %node.raft.raft_addr(),
        http = %http_addr,
        tls = node.config.tls_on(),
        insecure = !node.config.tls_on(),
        "node serving"
    );
    Ok(RunningNode {
        node,
        stop,
        servers: vec![grpc, web, scheduled],
    })
}

/// Forms the cluster of the config's initial members, if this node's state is new.
async fn initialize_cluster(raft: &ExchangeNode, config: &NodeConfig) -> Result<(), StartError> {
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
    tls: Option<Arc<qastore_security::tls::ReloadingTls>>,
    gate: Arc<crate::access::Gate>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let max = node.config.max_request_bytes;
    let handshake_timeout = node.config.tls.handshake_timeout();
    let store = StoreServer::new(StoreService::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let admin = AdminServer::new(AdminService::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let feed = FeedServer::new(FeedService::new(node.clone(), stopped.clone()))
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
        // Callers may come without a certificate only where a token can stand in for one.
        let client_certs = if gate.takes_tokens() {
            qastore_security::tls::ClientCerts::Optional
        } else {
            qastore_security::tls::ClientCerts::Required
        };
        let limiter = node.connections.clone();
        // A peer that vanished without closing its connection is noticed by the keep-alive
        // pings and its connection closed, so it holds nothing for long.
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(node.config.max_streams_per_connection))
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(tower::layer::layer_fn(crate::rpc_timing::Timed::new))
            .layer(tower::layer::layer_fn(move |s| {
                crate::access::Gated::new(s, gate.clone())
            }))
            .add_service(store)
            .add_service(admin)
            .add_service(feed);
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let result = match tls {
            Some(tls) => {
                let options = qastore_security::tls::AcceptOptions {
                    handshake_timeout,
                    client_certs,
                    limiter: Some(limiter),
                    protocol: qastore_security::tls::Protocol::H2,
                };
                let incoming = qastore_security::tls::accept(incoming, tls, options);
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "the API server stopped");
        }
    })
}

impl RunningNode {
    /// The node's shared state, for tests that look inside.
    #[cfg(test)]
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Reads the node's TLS files and token keys again now (on SIGHUP): new connections, and
    /// the node's own connections to its peers, use what the TLS files hold, and every token
    /// is checked against the keys the file holds. Without TLS there is nothing to do.
    pub fn reload_tls(&self) -> Result<(), String> {
        if let Some(tls) = &self.node.raft.config().tls {
            tls.reload().map_err(|e| e.to_string())?;
        }
        if let Some(tokens) = &self.node.tokens {
            tokens
                .reload()
                .map_err(|e| format!("token_key_file: {e}"))?;
        }
        Ok(())
    }

    /// Where the gRPC API listens (the bound address, when configured with port 0).
    pub fn api_addr(&self) -> SocketAddr {
        self.node.api_addr
    }

    /// Where the HTTP port listens (the bound address, when configured with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.node.http_addr
    }

    /// Stops gracefully: refuses new calls, ends subscription streams, lets calls in flight
    /// finish (up to `grace`), stops Raft, and flushes the engine so a restart has little log
    /// to re-apply.
    pub async fn shutdown(self, grace: Duration) -> Result<(), qastore_raft::Error> {
        let id = self.node.raft.id();
        tracing::info!(node = id, "shutting down");
        self.node.stop_accepting();
        let _ = self.stop.send(true);
        for s in self.servers {
            if tokio::time::timeout(grace, s).await.is_err() {
                tracing::warn!(node = id, "calls still in flight after the grace period");
            }
        }
        // Stopping Raft also flushes and closes the engine.
        let raft = self.node.raft.shutdown_flushed().await;
        tracing::info!(node = id, "node stopped");
        raft
    }
}
