//! The cluster under test: N `qastore serve` processes on loopback, every peer link through a
//! [`LinkProxy`] (each node dials its peers through its own proxies, set with the node's
//! `dial_overrides`), with the operations nemeses need: kill, restart, pause, resume,
//! partition, slow links, and health checks.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qastore_client::{Client, ClientOptions};
use qastore_proto::v1 as pb;

use crate::proxy::{LinkProxy, LinkState};
use crate::HarnessError;

/// One node process, in a slot (fixed addresses and proxies) that a replacement node with a
/// new id may take over.
#[derive(Debug)]
pub struct NodeProc {
    /// Its slot (the id of the node first started there).
    pub slot: u64,
    /// Node id of the node now in the slot.
    pub id: u64,
    /// Client API address.
    pub api: SocketAddr,
    /// Peer address (where the node listens; peers reach it through proxies).
    pub raft: SocketAddr,
    http: SocketAddr,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// The `[dial_overrides]` table of its config.
    overrides: String,
    child: Option<Child>,
    paused: bool,
}

/// The cluster under test.
#[derive(Debug)]
pub struct ChaosCluster {
    /// Where configs, data and logs live.
    pub dir: PathBuf,
    exe: PathBuf,
    env: Vec<(String, String)>,
    /// The nodes by slot.
    pub nodes: BTreeMap<u64, NodeProc>,
    /// The proxy of each directed link between slots (from, to).
    pub links: BTreeMap<(u64, u64), LinkProxy>,
    next_id: u64,
}

/// The `qastore` binary: `$QASTORE_BIN`, or beside (or one level above) this executable, as
/// cargo lays out `target/<profile>/` and `target/<profile>/deps/`.
pub fn find_qastore() -> Result<PathBuf, HarnessError> {
    if let Ok(p) = std::env::var("QASTORE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| HarnessError(format!("current exe: {e}")))?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("qastore");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(HarnessError(
        "the qastore binary was not found beside this program; build it or set QASTORE_BIN".into(),
    ))
}

/// `n` free loopback addresses, with listeners holding them: keep those until the proxies
/// have their own ports, or a proxy may be handed one of them.
fn free_addrs(n: usize) -> Result<(Vec<TcpListener>, Vec<SocketAddr>), HarnessError> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| HarnessError(format!("free ports: {e}")))?;
    let addrs = held
        .iter()
        .map(|l| l.local_addr().map_err(|e| HarnessError(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok((held, addrs))
}

/// Writes a node's config; `members` (the initial members) only for the first nodes.
fn write_config(n: &NodeProc, members: &str) -> Result<(), HarnessError> {
    let text = format!(
        "cluster_id = \"chaos\"\nnode_id = {}\ndata_dir = \"{}\"\napi_listen = \"{}\"\n\
         raft_listen = \"{}\"\nhttp_listen = \"{}\"\nwrite_timeout_ms = 2000\n\n{members}\
         [raft]\nlog_entries_kept_behind_snapshot = 2000\n\n[dial_overrides]\n{}",
        n.id,
        n.data.display(),
        n.api,
        n.raft,
        n.http,
        n.overrides,
    );
    std::fs::write(&n.config, text).map_err(|e| HarnessError(e.to_string()))
}

fn signal(c: &Child, sig: i32) {
    // SAFETY: signalling a child process this harness started and has not reaped.
    unsafe {
        libc::kill(c.id() as libc::pid_t, sig);
    }
}

impl ChaosCluster {
    /// Starts `size` nodes under `dir`, each process with the environment variables `env`,
    /// and waits for a healthy cluster.
    pub async fn start(
        size: usize,
        dir: &Path,
        env: &[(String, String)],
    ) -> Result<ChaosCluster, HarnessError> {
        let exe = find_qastore()?;
        // A directory of an earlier run (marked) is wiped; anything else must be empty.
        const MARKER: &str = ".qastore-chaos";
        if dir.join(MARKER).exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| HarnessError(format!("wiping {}: {e}", dir.display())))?;
        } else if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(HarnessError(format!("{} is not empty", dir.display())));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError(format!("{}: {e}", dir.display())))?;
        std::fs::write(dir.join(MARKER), b"").map_err(|e| HarnessError(e.to_string()))?;
        let (held, addrs) = free_addrs(size * 3)?;
        let ids: Vec<u64> = (1..=size as u64).collect();
        let raft_of = |id: u64| addrs[(id as usize - 1) * 3 + 1];
        let mut links = BTreeMap::new();
        for &from in &ids {
            for &to in &ids {
                if from != to {
                    let p = LinkProxy::start(raft_of(to))
                        .await
                        .map_err(|e| HarnessError(format!("proxy: {e}")))?;
                    links.insert((from, to), p);
                }
            }
        }
        let members: String = ids
            .iter()
            .map(|id| {
                let i = (*id as usize - 1) * 3;
                format!(
                    "[[initial_members]]\nid = {id}\nraft = \"{}\"\napi = \"{}\"\n\n",
                    addrs[i + 1],
                    addrs[i]
                )
            })
            .collect();
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let i = (id as usize - 1) * 3;
            // Keyed by the peer's advertised address: a node replacing it there is covered.
            let overrides: String = ids
                .iter()
                .filter(|p| **p != id)
                .map(|p| format!("\"{}\" = \"{}\"\n", raft_of(*p), links[&(id, *p)].listen))
                .collect();
            let n = NodeProc {
                slot: id,
                id,
                api: addrs[i],
                raft: addrs[i + 1],
                http: addrs[i + 2],
                data: dir.join(format!("node{id}")),
                config: dir.join(format!("node{id}.toml")),
                log: dir.join(format!("node{id}.log")),
                overrides,
                child: None,
                paused: false,
            };
            write_config(&n, &members)?;
            nodes.insert(id, n);
        }
        drop(held);
        let mut c = ChaosCluster {
            dir: dir.to_path_buf(),
            exe,
            env: env.to_vec(),
            nodes,
            links,
            next_id: size as u64 + 1,
        };
        for &id in &ids {
            c.spawn(id, id == 1)?;
        }
        c.healthy(Duration::from_secs(30)).await?;
        Ok(c)
    }

    /// Starts node `id`'s process.
    pub fn spawn(&mut self, id: u64, init: bool) -> Result<(), HarnessError> {
        let exe = self.exe.clone();
        let env = self.env.clone();
        let n = self.node_mut(id)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .map_err(|e| HarnessError(e.to_string()))?;
        let err = log.try_clone().map_err(|e| HarnessError(e.to_string()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--config"])
            .arg(&n.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .envs(env);
        if init {
            cmd.arg("--init");
        }
        n.child = Some(
            cmd.spawn()
                .map_err(|e| HarnessError(format!("spawn: {e}")))?,
        );
        n.paused = false;
        Ok(())
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut NodeProc, HarnessError> {
        self.nodes
            .values_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| HarnessError(format!("no node {id}")))
    }

    /// The node with id `id`.
    pub fn node(&self, id: u64) -> Option<&NodeProc> {
        self.nodes.values().find(|n| n.id == id)
    }

    /// Node ids of every slot.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.values().map(|n| n.id).collect()
    }

    /// Every node's client address.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.api.to_string()).collect()
    }

    /// A client of the whole cluster.
    pub fn client(
        &self,
        name: &str,
        call_timeout: Duration,
        retry_for: Duration,
    ) -> Result<Client, HarnessError> {
        Client::new(
            &self.endpoints(),
            ClientOptions {
                client_id: name.into(),
                call_timeout,
                retry_for,
                ..ClientOptions::default()
            },
        )
        .map_err(|e| HarnessError(e.to_string()))
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) -> Result<(), HarnessError> {
        let n = self.node_mut(id)?;
        if let Some(mut c) = n.child.take() {
            if n.paused {
                signal(&c, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        n.paused = false;
        Ok(())
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, id: u64, paused: bool) -> Result<(), HarnessError> {
        let n = self.node_mut(id)?;
        let Some(c) = n.child.as_ref() else {
            return Err(HarnessError(format!("node {id} is not running")));
        };
        signal(c, if paused { libc::SIGSTOP } else { libc::SIGCONT });
        n.paused = paused;
        Ok(())
    }

    /// Cuts `id` off from every other node, both ways.
    pub fn isolate(&self, id: u64) {
        let Some(slot) = self.node(id).map(|n| n.slot) else {
            return;
        };
        for ((from, to), link) in &self.links {
            if *from == slot || *to == slot {
                link.set(LinkState::Blackhole);
                link.cut();
            }
        }
    }

    /// Blackholes the link `from` -> `to` only.
    pub fn one_way(&self, from: u64, to: u64) {
        let (Some(f), Some(t)) = (self.node(from), self.node(to)) else {
            return;
        };
        if let Some(l) = self.links.get(&(f.slot, t.slot)) {
            l.set(LinkState::Blackhole);
            l.cut();
        }
    }

    /// Delays every link.
    pub fn slow(&self, delay: Duration) {
        for l in self.links.values() {
            l.set_delay(delay);
        }
    }

    /// Every link passes bytes again.
    pub fn heal_links(&self) {
        for l in self.links.values() {
            l.heal();
        }
    }

    /// Asks the leader `from` to hand leadership to `to`.
    pub async fn transfer_leader(
        &self,
        client: &Client,
        from: u64,
        to: u64,
    ) -> Result<(), HarnessError> {
        let addr = self.node_api(from)?;
        let mut admin = client
            .admin_at(&addr)
            .map_err(|e| HarnessError(e.to_string()))?;
        let mut req = tonic::Request::new(pb::TransferLeadershipRequest {
            to_node_id: to,
            wait_ms: 5_000,
        });
        req.set_timeout(Duration::from_secs(6));
        admin
            .transfer_leadership(req)
            .await
            .map(|_| ())
            .map_err(|s| HarnessError(format!("transfer to {to}: {}", s.message())))
    }

    fn node_api(&self, id: u64) -> Result<String, HarnessError> {
        self.node(id)
            .map(|n| n.api.to_string())
            .ok_or_else(|| HarnessError(format!("no node {id}")))
    }

    /// Replaces follower `old`: kills it, wipes its data, removes it from the cluster, starts
    /// a node with a new id in its slot and adds it (it catches up, through a snapshot if the
    /// log was purged), then makes it a voter. Returns the new id.
    pub async fn replace(&mut self, client: &Client, old: u64) -> Result<u64, HarnessError> {
        let leader = self
            .leader(client)
            .await
            .ok_or_else(|| HarnessError("no leader".into()))?;
        if leader == old {
            return Err(HarnessError("the node to replace leads".into()));
        }
        self.kill(old)?;
        let data = self
            .node(old)
            .map(|n| n.data.clone())
            .ok_or_else(|| HarnessError(format!("no node {old}")))?;
        std::fs::remove_dir_all(&data)
            .map_err(|e| HarnessError(format!("wiping {}: {e}", data.display())))?;
        self.admin_on_leader(client, |mut a| async move {
            a.remove_node(pb::RemoveNodeRequest { node_id: old })
                .await
                .map(|_| ())
        })
        .await?;
        // Snapshots let the newcomer catch up without the whole log.
        for id in self.ids().into_iter().filter(|i| *i != old) {
            if let Ok(addr) = self.node_api(id) {
                if let Ok(mut a) = client.admin_at(&addr) {
                    let _ = a.trigger_snapshot(pb::TriggerSnapshotRequest {}).await;
                }
            }
        }
        let new = self.next_id;
        self.next_id += 1;
        let n = self.node_mut(old)?;
        n.id = new;
        write_config(n, "")?;
        let (raft, api) = (n.raft.to_string(), n.api.to_string());
        self.spawn(new, false)?;
        self.admin_on_leader(client, move |mut a| {
            let (raft, api) = (raft.clone(), api.clone());
            async move {
                let mut req = tonic::Request::new(pb::AddLearnerRequest {
                    node_id: new,
                    raft_addr: raft,
                    api_addr: api,
                    wait_caught_up_ms: 60_000,
                });
                req.set_timeout(Duration::from_secs(65));
                a.add_learner(req).await.map(|_| ())
            }
        })
        .await?;
        self.admin_on_leader(client, move |mut a| async move {
            a.promote(pb::PromoteRequest { node_id: new })
                .await
                .map(|_| ())
        })
        .await?;
        Ok(new)
    }

    /// Runs an admin call on the leader, retrying (a new leader may be elected meanwhile)
    /// for up to 30 seconds.
    async fn admin_on_leader<F, Fut>(&self, client: &Client, call: F) -> Result<(), HarnessError>
    where
        F: Fn(qastore_proto::v1::admin_client::AdminClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<(), tonic::Status>>,
    {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(l) = self.leader(client).await {
                let addr = self.node_api(l)?;
                let admin = client
                    .admin_at(&addr)
                    .map_err(|e| HarnessError(e.to_string()))?;
                match call(admin).await {
                    Ok(()) => return Ok(()),
                    Err(s) => last = s.message().to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(HarnessError(format!(
            "admin call on the leader failed: {last}"
        )))
    }

    /// Appends `len` bytes of a record that never finished (a torn write) to the newest
    /// segment of stopped node `id`'s write-ahead log. Shorter than a frame header, so it can
    /// only be a torn tail: recovery must cut it and go on.
    pub fn tear_wal_tail(&self, id: u64, len: usize) -> Result<(), HarnessError> {
        use std::io::Write;
        let n = self
            .node(id)
            .ok_or_else(|| HarnessError(format!("no node {id}")))?;
        if n.child.is_some() {
            return Err(HarnessError(format!("node {id} is running")));
        }
        let wal = n.data.join("wal");
        let newest = std::fs::read_dir(&wal)
            .map_err(|e| HarnessError(format!("{}: {e}", wal.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .max()
            .ok_or_else(|| HarnessError(format!("no segment in {}", wal.display())))?;
        // A frame starts with its length; a few bytes of one that claims more than follows.
        let mut torn = vec![0u8; len.clamp(1, 11)];
        torn[0] = 0x40;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&newest)
            .map_err(|e| HarnessError(format!("{}: {e}", newest.display())))?;
        f.write_all(&torn).map_err(|e| HarnessError(e.to_string()))
    }

    /// Ids of running, unpaused nodes.
    pub fn up(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.child.is_some() && !n.paused)
            .map(|n| n.id)
            .collect()
    }

    /// A node's own status, if it answers within 500 ms.
    pub async fn status(&self, id: u64, client: &Client) -> Option<pb::NodeStatus> {
        let addr = self.node(id)?.api.to_string();
        let mut admin = client.admin_at(&addr).ok()?;
        let mut req = tonic::Request::new(pb::NodeStatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        tokio::time::timeout(Duration::from_millis(700), admin.get_node_status(req))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    /// The leader as the running nodes see it: a node reporting itself leader in the highest
    /// term, confirmed by at least one other node naming it.
    pub async fn leader(&self, client: &Client) -> Option<u64> {
        let mut statuses = Vec::new();
        for id in self.up() {
            if let Some(s) = self.status(id, client).await {
                statuses.push(s);
            }
        }
        let top = statuses
            .iter()
            .filter(|s| s.role == pb::Role::Leader as i32)
            .max_by_key(|s| s.term)?;
        let named = statuses
            .iter()
            .filter(|s| {
                s.node_id != top.node_id && s.leader_id == Some(top.node_id) && s.term == top.term
            })
            .count();
        (named > 0 || self.nodes.len() == 1).then_some(top.node_id)
    }

    /// Waits until every node answers, a leader is confirmed, and every node has applied what
    /// it knows is committed (within 1,000 entries); returns the leader.
    pub async fn healthy(&self, within: Duration) -> Result<u64, HarnessError> {
        let client = self.client("health", Duration::from_millis(500), Duration::ZERO)?;
        let started = Instant::now();
        let mut why = String::new();
        while started.elapsed() < within {
            let mut ok = true;
            for id in self.ids() {
                match self.status(id, &client).await {
                    Some(s)
                        if s.committed_index
                            .unwrap_or(0)
                            .saturating_sub(s.applied_index.unwrap_or(0))
                            <= 1000 => {}
                    Some(s) => {
                        ok = false;
                        why = format!("node {id} lags: {s:?}");
                    }
                    None => {
                        ok = false;
                        why = format!("node {id} does not answer");
                    }
                }
            }
            if ok {
                if let Some(l) = self.leader(&client).await {
                    return Ok(l);
                }
                why = "no confirmed leader".into();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(HarnessError(format!("unhealthy after {within:?}: {why}")))
    }

    /// Stops every node.
    pub fn stop_all(&mut self) {
        let ids = self.ids();
        for id in ids {
            let _ = self.kill(id);
        }
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
