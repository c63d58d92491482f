//! The in-process cluster harness of the Raft tests, generic over the application: nodes on
//! loopback, each with its own data directory. The Raft crate's tests run it with a toy
//! application; the node crate's tests include this same file and run it with the exchange.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qastore_lsm::wal::WalConfig;
use qastore_lsm::EngineConfig;
use qastore_raft::{Application, NodeId, PeerNode, RaftConfig, RaftNode, RaftNodeConfig, Role};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Cluster tests share loopback ports and two cores: they run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const WAIT: Duration = Duration::from_secs(30);

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Settings for tests: election timeouts of at least a second, small snapshots and log
/// retention so that snapshots happen.
pub fn settings() -> RaftConfig {
    RaftConfig {
        heartbeat_ms: 100,
        election_timeout_min_ms: 1000,
        election_timeout_max_ms: 2000,
        log_entries_kept_behind_snapshot: 50,
        snapshot_interval_secs: 3600,
        schedule_interval_secs: 3600,
        ..RaftConfig::default()
    }
}

/// Small engine settings, so flushes and compactions happen in tests.
pub fn engine_options() -> EngineConfig {
    EngineConfig {
        memtable_bytes: 1 << 20,
        level1_bytes: 8 << 20,
        target_file_bytes: 2 << 20,
        ..EngineConfig::default()
    }
}

pub fn config(cluster: &str, id: NodeId, dir: &Path, port: u16) -> RaftNodeConfig {
    RaftNodeConfig {
        cluster_id: cluster.to_string(),
        node_id: id,
        data_dir: dir.to_path_buf(),
        raft_listen: format!("127.0.0.1:{port}").parse().unwrap(),
        raft_advertise: None,
        api_advertise: format!("127.0.0.1:{}", port + 1),
        raft: settings(),
        engine: engine_options(),
        wal: WalConfig::default(),
        dial_overrides: Default::default(),
        tls: None,
    }
}

/// Installs a log subscriber once (`RUST_LOG` chooses what is shown).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// An application the harness runs, with what a started node of it runs beside Raft.
pub trait TestApp: Application + Sized {
    /// Starts the task a node of this application runs beside Raft (the exchange's schedule
    /// of system commands, for one), ended when `stop` turns true; none by default.
    fn companion(node: Arc<RaftNode<Self>>, stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
        let _ = (node, stop);
        None
    }
}

/// A set of nodes on loopback, each with its own data directory and its companion task.
pub struct Cluster<A: TestApp> {
    pub id: String,
    pub root: tempfile::TempDir,
    pub nodes: BTreeMap<NodeId, Arc<RaftNode<A>>>,
    pub companions: BTreeMap<NodeId, (watch::Sender<bool>, JoinHandle<()>)>,
    pub ports: BTreeMap<NodeId, u16>,
    pub settings: RaftConfig,
}

impl<A: TestApp> Cluster<A> {
    pub fn dir(&self, id: NodeId) -> PathBuf {
        self.root.path().join(format!("n{id}"))
    }

    pub async fn start_node(&mut self, id: NodeId) {
        self.start_node_with(id, |_| {}).await;
    }

    /// Starts node `id` with its config changed by `change` first.
    pub async fn start_node_with(&mut self, id: NodeId, change: impl FnOnce(&mut RaftNodeConfig)) {
        let port = *self.ports.entry(id).or_insert_with(free_port);
        let mut cfg = config(&self.id, id, &self.dir(id), port);
        cfg.raft = self.settings.clone();
        change(&mut cfg);
        let node = RaftNode::<A>::start(cfg).await.unwrap();
        self.insert(id, node);
    }

    /// Adds a node started elsewhere as `id`, with its companion task.
    pub fn insert(&mut self, id: NodeId, node: RaftNode<A>) {
        let node = Arc::new(node);
        let (stop, stopped) = watch::channel(false);
        if let Some(task) = A::companion(node.clone(), stopped) {
            self.companions.insert(id, (stop, task));
        }
        self.nodes.insert(id, node);
    }

    /// A cluster with no node started yet.
    pub fn empty(settings: RaftConfig) -> Self {
        init_tracing();
        Cluster {
            id: "test-cluster".into(),
            root: tempfile::tempdir().unwrap(),
            nodes: BTreeMap::new(),
            companions: BTreeMap::new(),
            ports: BTreeMap::new(),
            settings,
        }
    }

    /// Makes the started nodes the voters, through node 1, and waits for a leader.
    pub async fn initialize(&self) {
        let members: BTreeMap<NodeId, PeerNode> = self
            .nodes
            .iter()
            .map(|(id, n)| (*id, n.peer_node()))
            .collect();
        self.nodes[&1].initialize(members).await.unwrap();
        self.leader().await;
    }

    /// Three voters, 1 to 3, initialized through node 1.
    pub async fn three() -> Self {
        Self::three_with(settings()).await
    }

    /// Three voters with the given Raft settings.
    pub async fn three_with(settings: RaftConfig) -> Self {
        let mut c = Cluster::empty(settings);
        for id in 1..=3 {
            c.start_node(id).await;
        }
        c.initialize().await;
        c
    }

    /// The leader, once the nodes agree on one.
    pub async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + WAIT;
        loop {
            let leaders: BTreeSet<Option<NodeId>> =
                self.nodes.values().map(|n| n.status().leader).collect();
            if leaders.len() == 1 {
                if let Some(Some(l)) = leaders.into_iter().next() {
                    if self
                        .nodes
                        .get(&l)
                        .is_some_and(|n| n.status().role == Role::Leader)
                    {
                        return l;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader agreed on");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node has applied `index`.
    pub async fn wait_applied(&self, index: u64) {
        let deadline = Instant::now() + WAIT;
        for n in self.nodes.values() {
            while n.status().applied.unwrap_or(0) < index {
                assert!(
                    Instant::now() < deadline,
                    "node {} stuck at {:?} < {index}",
                    n.id(),
                    n.status().applied
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Every running node's state hash, once all applied `index` (and nothing after).
    pub async fn hashes(&self, index: u64) -> BTreeMap<NodeId, u64> {
        self.wait_applied(index).await;
        self.nodes
            .iter()
            .map(|(id, n)| (*id, n.engine().unwrap().state_hash().unwrap()))
            .collect()
    }

    pub async fn stop(&mut self, id: NodeId) {
        if let Some((stop, task)) = self.companions.remove(&id) {
            let _ = stop.send(true);
            task.await.unwrap();
        }
        if let Some(n) = self.nodes.remove(&id) {
            n.shutdown().await.unwrap();
        }
    }

    pub async fn stop_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}
