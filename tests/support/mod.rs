//! Real `qastore serve` processes on loopback for the integration tests: ephemeral ports, one
//! data directory each under a temporary directory, default Raft settings (election timeouts
//! of one to two seconds). Tests of one file run one at a time ([`SERIAL`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use qastore_client::{Client, ClientOptions};
use qastore_proto::v1 as pb;

/// Cluster tests run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const EXE: &str = env!("CARGO_BIN_EXE_qastore");

/// One node process.
pub struct Proc {
    pub id: u64,
    pub api: SocketAddr,
    pub raft: SocketAddr,
    pub http: SocketAddr,
    pub config: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// A cluster of node processes.
pub struct ProcCluster {
    pub dir: tempfile::TempDir,
    pub nodes: BTreeMap<u64, Proc>,
    pub cluster_id: String,
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

impl ProcCluster {
    /// Writes the configs of `size` nodes (with `extra` TOML appended to each) and starts
    /// them, node 1 forming the cluster; waits for a leader.
    pub async fn start(size: usize, extra: &str) -> ProcCluster {
        let mut c = Self::prepare(size, "test-cluster", extra, 1);
        for id in 1..=size as u64 {
            c.spawn(id, id == 1);
        }
        c.wait_leader(Duration::from_secs(30)).await;
        c
    }

    /// Writes configs only; `first_id` is the first node id.
    pub fn prepare(size: usize, cluster_id: &str, extra: &str, first_id: u64) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let addrs = free_addrs(size * 3);
        let ids: Vec<u64> = (first_id..first_id + size as u64).collect();
        let members: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                format!(
                    "[[initial_members]]\nid = {id}\nraft = \"{}\"\napi = \"{}\"\n\n",
                    addrs[3 * i + 1],
                    addrs[3 * i]
                )
            })
            .collect();
        let mut nodes = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let data = dir.path().join(format!("node{id}"));
            let config = dir.path().join(format!("node{id}.toml"));
            let (api, raft, http) = (addrs[3 * i], addrs[3 * i + 1], addrs[3 * i + 2]);
            std::fs::write(
                &config,
                format!(
                    "cluster_id = \"{cluster_id}\"\nnode_id = {id}\ndata_dir = \"{}\"\n\
                     api_listen = \"{api}\"\nraft_listen = \"{raft}\"\nhttp_listen = \"{http}\"\n{extra}\n\n{members}",
                    data.display()
                ),
            )
            .unwrap();
            nodes.insert(
                *id,
                Proc {
                    id: *id,
                    api,
                    raft,
                    http,
                    config,
                    data,
                    log: dir.path().join(format!("node{id}.log")),
                    child: None,
                },
            );
        }
        ProcCluster {
            dir,
            nodes,
            cluster_id: cluster_id.into(),
        }
    }

    /// Starts node `id`'s process.
    pub fn spawn(&mut self, id: u64, init: bool) {
        self.spawn_with(id, if init { &["--init"] } else { &[] });
    }

    /// Starts node `id`'s process with extra `serve` arguments.
    pub fn spawn_with(&mut self, id: u64, extra: &[&str]) {
        let n = self.nodes.get_mut(&id).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let mut cmd = Command::new(EXE);
        cmd.args(["serve", "--config"])
            .arg(&n.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .args(extra);
        n.child = Some(cmd.spawn().unwrap());
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.api.to_string()).collect()
    }

    pub fn api(&self, id: u64) -> String {
        self.nodes[&id].api.to_string()
    }

    pub fn client(&self) -> Client {
        Client::new(
            &self.endpoints(),
            ClientOptions {
                client_id: "test-client".into(),
                call_timeout: Duration::from_secs(5),
                retry_for: Duration::from_secs(30),
                ..ClientOptions::default()
            },
        )
        .unwrap()
    }

    /// Waits until some node names a leader; returns it and its client address.
    pub async fn wait_leader(&self, within: Duration) -> (u64, String) {
        let client = self.client();
        let started = Instant::now();
        loop {
            if let Ok(l) = client.find_leader().await {
                return l;
            }
            assert!(
                started.elapsed() < within,
                "no leader within {within:?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `id` answers on its client API.
    pub async fn wait_up(&self, id: u64) {
        let client = self.client();
        let started = Instant::now();
        loop {
            let mut admin = client.admin_at(&self.api(id)).unwrap();
            if admin
                .get_node_status(client.request(pb::NodeStatusRequest {}))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node {id} never came up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The followers' ids, given the leader.
    pub fn others(&self, leader: u64) -> Vec<u64> {
        self.nodes
            .keys()
            .copied()
            .filter(|i| *i != leader)
            .collect()
    }

    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes.get_mut(&id).unwrap().child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn terminate(&mut self, id: u64) -> ExitStatus {
        let mut c = self.nodes.get_mut(&id).unwrap().child.take().unwrap();
        signal(&c, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "node {id} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a process that ends by itself (e.g. halted by a drill).
    pub fn reap(&mut self, id: u64, within: Duration) -> Option<ExitStatus> {
        let n = self.nodes.get_mut(&id).unwrap();
        let c = n.child.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = c.try_wait().unwrap() {
                n.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) a node: a partition as far as the others can tell.
    pub fn freeze(&self, id: u64, frozen: bool) {
        let c = self.nodes[&id].child.as_ref().unwrap();
        signal(c, if frozen { libc::SIGSTOP } else { libc::SIGCONT });
    }

    /// Runs `qastore ctl` against this cluster.
    pub async fn ctl(&self, args: &[&str]) -> Output {
        let endpoints = self.endpoints().join(",");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(EXE)
                .arg("ctl")
                .arg("--endpoints")
                .arg(endpoints)
                .args(args)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// Writes the config of a node `id` that is not among the initial members (to be added
    /// with `add-learner`), with `extra` TOML; start it with `spawn(id, false)`.
    pub fn prepare_joiner(&mut self, id: u64, extra: &str) {
        let addrs = free_addrs(3);
        let (api, raft, http) = (addrs[0], addrs[1], addrs[2]);
        let data = self.dir.path().join(format!("node{id}"));
        let config = self.dir.path().join(format!("node{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "cluster_id = \"{}\"\nnode_id = {id}\ndata_dir = \"{}\"\n\
                 api_listen = \"{api}\"\nraft_listen = \"{raft}\"\nhttp_listen = \"{http}\"\n{extra}\n",
                self.cluster_id,
                data.display()
            ),
        )
        .unwrap();
        let log = self.dir.path().join(format!("node{id}.log"));
        self.nodes.insert(
            id,
            Proc {
                id,
                api,
                raft,
                http,
                config,
                data,
                log,
                child: None,
            },
        );
    }

    /// A plain HTTP GET on node `id`'s HTTP port: (status code, body).
    pub fn http_get(&self, id: u64, path: &str) -> (u16, String) {
        http(self.nodes[&id].http, "GET", path)
    }
}

fn signal(c: &Child, sig: i32) {
    // SAFETY: signalling a child process this harness started and has not reaped.
    unsafe {
        libc::kill(c.id() as libc::pid_t, sig);
    }
}

/// One HTTP/1.1 request without a body; returns the status and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                signal(&c, libc::SIGCONT);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A valid order insert.
pub fn order(user: &str, id: &str) -> pb::Record {
    pb::Record {
        kind: Some(pb::record::Kind::OrderInsert(pb::OrderInsert {
            user_id: user.into(),
            order_id: id.into(),
            exchange_id: "CFFEX".into(),
            instrument_id: "IF2412".into(),
            direction: pb::Direction::Buy as i32,
            offset: pb::Offset::Open as i32,
            price_type: pb::PriceType::Limit as i32,
            limit_price: 3920.2,
            volume_orign: 2,
            volume_left: 2,
            time_condition: pb::TimeCondition::Gfd as i32,
            volume_condition: pb::VolumeCondition::Any as i32,
            status: pb::OrderStatus::Alive as i32,
            insert_date_time: 1_733_450_000_000_000_000,
            exchange_order_id: String::new(),
            frozen_margin: 0.0,
        })),
    }
}

/// Read options.
pub fn read(
    c: pb::Consistency,
    max_staleness_ms: u64,
    min_applied_index: u64,
) -> Option<pb::ReadOptions> {
    Some(pb::ReadOptions {
        consistency: c as i32,
        max_staleness_ms,
        min_applied_index,
    })
}

/// A user's orders read from node `addr`.
pub async fn orders_at(
    client: &Client,
    addr: &str,
    user: &str,
    options: Option<pb::ReadOptions>,
) -> Result<pb::ListOrdersResponse, tonic::Status> {
    let mut s = client.store_at(addr).unwrap();
    s.list_orders(client.request(pb::ListOrdersRequest {
        user_id: user.into(),
        only_alive: false,
        with_history: false,
        read: options,
    }))
    .await
    .map(|r| r.into_inner())
}

/// The replicas' hashes at a fresh hash mark.
pub async fn hashes(client: &Client, endpoints: &[String]) -> Vec<u64> {
    let (_, leader) = client.find_leader().await.unwrap();
    let index = client
        .admin_at(&leader)
        .unwrap()
        .hash_mark(client.request(pb::HashMarkRequest {}))
        .await
        .unwrap()
        .into_inner()
        .index;
    let mut out = Vec::new();
    for e in endpoints {
        let r = client
            .admin_at(e)
            .unwrap()
            .state_hash(client.request(pb::StateHashRequest {
                index,
                wait_ms: 10_000,
            }))
            .await
            .unwrap()
            .into_inner();
        out.push(r.hash);
    }
    out
}
