//! The cluster under test: the test kit's process cluster with every peer link through a
//! [`LinkProxy`] (each node dials its peers through its own proxies, set with the node's
//! `dial_overrides`), and the operations nemeses need beyond the kit's kill, restart and pause:
//! partitions, slow links, leader transfer, replacing a node, and torn writes.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use qastore_client::Client;
use qastore_proto::v1 as pb;
use qastore_testkit::{ClusterSpec, Ports, ProcCluster};

use crate::proxy::{LinkProxy, LinkState};
use crate::HarnessError;

/// The settings every node of the cluster under test runs with.
const SETTINGS: &str =
    "write_timeout_ms = 2000\n\n[raft]\nlog_entries_kept_behind_snapshot = 2000\n";

/// The cluster under test. Nodes live in slots (fixed addresses and proxies, named by the id of
/// the node first started there) that a replacement node with a new id may take over.
#[derive(Debug)]
pub struct ChaosCluster {
    procs: ProcCluster,
    /// The proxy of each directed link between slots (from, to).
    pub links: BTreeMap<(u64, u64), LinkProxy>,
    /// The slot of each node id.
    slots: BTreeMap<u64, u64>,
    next_id: u64,
}

impl Deref for ChaosCluster {
    type Target = ProcCluster;

    fn deref(&self) -> &ProcCluster {
        &self.procs
    }
}

impl DerefMut for ChaosCluster {
    fn deref_mut(&mut self) -> &mut ProcCluster {
        &mut self.procs
    }
}

impl ChaosCluster {
    /// Starts `size` nodes under `dir`, each process with the environment variables `env`
    /// (`tls`: on mutual TLS), and waits for a healthy cluster.
    pub async fn start(
        size: usize,
        dir: &Path,
        env: &[(String, String)],
        tls: bool,
    ) -> Result<ChaosCluster, HarnessError> {
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
        // The nodes' ports stay reserved until the first node starts, so no proxy takes one.
        let mut procs = ProcCluster::create(ClusterSpec {
            size,
            first_id: 1,
            cluster_id: "chaos".into(),
            settings: SETTINGS.into(),
            ports: Ports::Free,
            env: env.to_vec(),
            exe: None,
            dir: Some(dir.to_path_buf()),
            tls,
        })?;
        let ids = procs.ids();
        let mut links = BTreeMap::new();
        for &from in &ids {
            for &to in &ids {
                if from != to {
                    let raft = procs.nodes[&to].raft;
                    let p = LinkProxy::start(raft)
                        .await
                        .map_err(|e| HarnessError(format!("proxy: {e}")))?;
                    links.insert((from, to), p);
                }
            }
        }
        for &id in &ids {
            // Keyed by the peer's advertised address: a node replacing it there is covered.
            let overrides: String = ids
                .iter()
                .filter(|p| **p != id)
                .map(|p| {
                    let raft = procs.nodes[p].raft;
                    format!("\"{raft}\" = \"{}\"\n", links[&(id, *p)].listen)
                })
                .collect();
            procs.node_mut(id)?.extra = format!("[dial_overrides]\n{overrides}");
            procs.write_config(id)?;
        }
        let mut c = ChaosCluster {
            procs,
            links,
            slots: ids.iter().map(|id| (*id, *id)).collect(),
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
        Ok(self.procs.spawn(id, init)?)
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) -> Result<(), HarnessError> {
        Ok(self.procs.kill(id)?)
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, id: u64, paused: bool) -> Result<(), HarnessError> {
        Ok(self.procs.pause(id, paused)?)
    }

    /// A client of the whole cluster.
    pub fn client(
        &self,
        name: &str,
        call_timeout: Duration,
        retry_for: Duration,
    ) -> Result<Client, HarnessError> {
        Ok(self.procs.client_with(name, call_timeout, retry_for)?)
    }

    /// The leader as the running nodes see it (see [`ProcCluster::confirmed_leader`]).
    pub async fn leader(&self, client: &Client) -> Option<u64> {
        self.procs.confirmed_leader(client).await
    }

    /// Waits until the cluster is healthy (see [`ProcCluster::healthy`]); returns the leader.
    pub async fn healthy(&self, within: Duration) -> Result<u64, HarnessError> {
        Ok(self.procs.healthy(within).await?)
    }

    /// Kills every node.
    pub fn stop_all(&mut self) {
        self.procs.kill_all();
    }

    /// Cuts `id` off from every other node, both ways.
    pub fn isolate(&self, id: u64) {
        let Some(slot) = self.slots.get(&id).copied() else {
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
        let (Some(f), Some(t)) = (self.slots.get(&from), self.slots.get(&to)) else {
            return;
        };
        if let Some(l) = self.links.get(&(*f, *t)) {
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
        self.procs.renumber(old, new)?;
        if let Some(slot) = self.slots.remove(&old) {
            self.slots.insert(new, slot);
        }
        let n = self
            .node(new)
            .ok_or_else(|| HarnessError(format!("no node {new}")))?;
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
        F: Fn(qastore_proto::v1::admin_client::AdminClient<qastore_client::Connection>) -> Fut,
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
        if n.is_running() {
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
}
