//! The etcd side: three `etcd` processes on loopback with etcd's defaults (heartbeat 100 ms,
//! election 1000 ms, a WAL fsync before every acknowledgement), driven through `etcd-client`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp};
use prost::Message;
use qastore_testkit::load::{closed_loop, LoadResult, Window};
use qastore_testkit::workload::Workload;
use qastore_testkit::{free_addresses, spawn_logged};

use super::{batch_keys, key, key_number, Shape, System, WriteFailure, BATCH};

/// How long a status call may take before the node counts as down.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);

struct Member {
    name: String,
    client_url: String,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The files of an etcd cluster on mutual TLS: the CA, and one certificate per member used
/// for both its client and peer ports (and by the benchmark's client).
struct EtcdTls {
    ca: PathBuf,
    certs: Vec<(PathBuf, PathBuf)>,
    client: (PathBuf, PathBuf),
}

/// Makes a CA, member certificates for loopback and a client certificate in `dir`.
fn make_tls(dir: &Path) -> Result<EtcdTls, String> {
    use qastore_security::{Authority, CertDir, Role};
    let certs = CertDir::new(dir);
    let fail = |e: qastore_security::Error| format!("making etcd's certificates: {e}");
    let ca = Authority::create("etcd-bench", 1).map_err(fail)?;
    certs
        .write_pair(&certs.ca(), ca.cert_pem(), ca.key_pem(), false)
        .map_err(fail)?;
    let mut members = Vec::new();
    for id in 1..=3 {
        let n = ca
            .issue_node(id, &["localhost".into(), "127.0.0.1".into()], 1)
            .map_err(fail)?;
        let paths = certs.node(id);
        certs
            .write_pair(&paths, &n.cert_pem, &n.key_pem, false)
            .map_err(fail)?;
        members.push((paths.cert, paths.key));
    }
    let client = ca.issue_client("bench", &Role::ALL, 1).map_err(fail)?;
    let paths = certs.client("bench");
    certs
        .write_pair(&paths, &client.cert_pem, &client.key_pem, false)
        .map_err(fail)?;
    Ok(EtcdTls {
        ca: certs.ca().cert,
        certs: members,
        client: (paths.cert, paths.key),
    })
}

/// A three-member etcd cluster of child processes.
pub struct EtcdCluster {
    exe: PathBuf,
    tls: Option<EtcdTls>,
    initial_cluster: String,
    members: Mutex<Vec<Member>>,
    clients: Vec<Client>,
    ids: Vec<u64>,
    /// Where writes go: the leader when last asked.
    write_node: AtomicUsize,
    dir: Mutex<Option<tempfile::TempDir>>,
    workload: Mutex<Workload>,
}

/// The 128-byte value stored under key `n`.
pub fn kv_value(n: u64) -> Vec<u8> {
    crate::value(n, 128)
}

impl EtcdCluster {
    /// Starts three members of the `etcd` program at `exe` in a new temporary directory and
    /// waits for a leader; `tls`: client and peer ports on mutual TLS (etcd's
    /// `--client-cert-auth` and `--peer-client-cert-auth`), with certificates made for the run.
    pub async fn start(exe: &Path, tls: bool) -> Result<EtcdCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("etcd-bench-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let tls = match tls {
            true => Some(make_tls(&dir.path().join("certs"))?),
            false => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addrs = free_addresses(6)?;
        let peer_url = |i: usize| format!("{scheme}://{}", addrs[3 + i]);
        let initial_cluster = (0..3)
            .map(|i| format!("n{}={}", i + 1, peer_url(i)))
            .collect::<Vec<_>>()
            .join(",");
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("n{}", i + 1),
                client_url: format!("{scheme}://{}", addrs[i]),
                data: dir.path().join(format!("n{}", i + 1)),
                log: dir.path().join(format!("n{}.log", i + 1)),
                child: None,
            })
            .collect();
        let client_tls = match &tls {
            None => None,
            Some(t) => {
                let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
                Some(
                    etcd_client::TlsOptions::new()
                        .ca_certificate(etcd_client::Certificate::from_pem(read(&t.ca)?))
                        .identity(etcd_client::Identity::from_pem(
                            read(&t.client.0)?,
                            read(&t.client.1)?,
                        )),
                )
            }
        };
        let mut sys = EtcdCluster {
            exe: exe.to_path_buf(),
            tls,
            initial_cluster,
            members: Mutex::new(members),
            clients: Vec::new(),
            ids: Vec::new(),
            write_node: AtomicUsize::new(0),
            dir: Mutex::new(Some(dir)),
            workload: Mutex::new(Workload::new(7, 8, 50)),
        };
        for i in 0..3 {
            sys.spawn(i, &peer_url(i))?;
        }
        let urls: Vec<String> =
            sys.with_members(|m| m.iter().map(|m| m.client_url.clone()).collect());
        for url in &urls {
            let mut options = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
            if let Some(t) = &client_tls {
                options = options.with_tls(t.clone());
            }
            let mut connected = None;
            for _ in 0..100 {
                if let Ok(c) = Client::connect([url.as_str()], Some(options.clone())).await {
                    connected = Some(c);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sys.clients
                .push(connected.ok_or_else(|| format!("etcd at {url} did not come up"))?);
        }
        super::wait_healthy(&sys, Duration::from_secs(60)).await?;
        for node in 0..3 {
            let id = sys
                .status(node)
                .await
                .and_then(|s| s.header().map(|h| h.member_id()))
                .ok_or("etcd member without an id")?;
            sys.ids.push(id);
        }
        Ok(sys)
    }

    /// The client of member `node` (its own endpoint only).
    pub fn client(&self, node: usize) -> Option<Client> {
        self.clients.get(node).cloned()
    }

    /// The member writes go to: the leader when last asked through [`System::leader`].
    pub fn write_node(&self) -> usize {
        self.write_node.load(Ordering::Relaxed)
    }

    fn with_members<T>(&self, f: impl FnOnce(&mut Vec<Member>) -> T) -> T {
        match self.members.lock() {
            Ok(mut m) => f(&mut m),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn spawn(&self, node: usize, peer_url: &str) -> Result<(), String> {
        let (exe, initial) = (self.exe.clone(), self.initial_cluster.clone());
        let tls = self
            .tls
            .as_ref()
            .and_then(|t| Some((t.ca.clone(), t.certs.get(node)?.clone())));
        self.with_members(|members| {
            let m = members.get_mut(node).ok_or("no such member")?;
            let mut cmd = Command::new(&exe);
            if let Some((ca, (cert, key))) = &tls {
                cmd.arg("--cert-file")
                    .arg(cert)
                    .arg("--key-file")
                    .arg(key)
                    .arg("--trusted-ca-file")
                    .arg(ca)
                    .arg("--client-cert-auth")
                    .arg("--peer-cert-file")
                    .arg(cert)
                    .arg("--peer-key-file")
                    .arg(key)
                    .arg("--peer-trusted-ca-file")
                    .arg(ca)
                    .arg("--peer-client-cert-auth");
            }
            cmd.arg("--name")
                .arg(&m.name)
                .arg("--data-dir")
                .arg(&m.data)
                .arg("--listen-client-urls")
                .arg(&m.client_url)
                .arg("--advertise-client-urls")
                .arg(&m.client_url)
                .arg("--listen-peer-urls")
                .arg(peer_url)
                .arg("--initial-advertise-peer-urls")
                .arg(peer_url)
                .arg("--initial-cluster")
                .arg(&initial)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg("qastore-bench");
            m.child = Some(spawn_logged(&mut cmd, &m.log)?);
            Ok(())
        })
    }

    fn peer_url(&self, node: usize) -> Option<String> {
        self.initial_cluster
            .split(',')
            .nth(node)
            .and_then(|p| p.split_once('='))
            .map(|(_, url)| url.to_string())
    }

    async fn status(&self, node: usize) -> Option<etcd_client::StatusResponse> {
        let mut c = self.clients.get(node)?.clone();
        tokio::time::timeout(STATUS_TIMEOUT, c.status())
            .await
            .ok()?
            .ok()
    }

    fn value(&self, worker: usize, seq: u64, shape: Shape) -> (String, Vec<u8>) {
        let n = key_number(worker, seq, 0);
        match shape {
            Shape::Kv => (key(n), kv_value(n)),
            Shape::Exchange => {
                let record = match self.workload.lock() {
                    Ok(mut w) => w.next_pb(),
                    Err(poisoned) => poisoned.into_inner().next_pb(),
                };
                (key(n), record.encode_to_vec())
            }
        }
    }

    async fn leader_id(&self) -> Option<u64> {
        for node in 0..self.clients.len() {
            if let Some(s) = self.status(node).await {
                if s.leader() != 0 {
                    return Some(s.leader());
                }
            }
        }
        None
    }
}

impl System for EtcdCluster {
    /// The process ids of the running members.
    fn pids(&self) -> Vec<u32> {
        self.with_members(|m| {
            m.iter()
                .filter_map(|m| m.child.as_ref().map(Child::id))
                .collect()
        })
    }

    fn name(&self) -> &'static str {
        "etcd"
    }

    fn nodes(&self) -> usize {
        self.clients.len()
    }

    async fn put(&self, worker: usize, seq: u64, shape: Shape) -> Result<u64, String> {
        let (k, v) = self.value(worker, seq, shape);
        // Writes go to the leader's endpoint, etcd's best case (a follower forwards them).
        let mut c = self.clients[self.write_node.load(Ordering::Relaxed)].clone();
        c.put(k, v, None)
            .await
            .map(|_| 1)
            .map_err(|e| e.to_string())
    }

    async fn batched_row(&self, clients: usize, window: Window) -> LoadResult {
        let client = self.clients[self.write_node.load(Ordering::Relaxed)].clone();
        closed_loop(clients, window, move |worker, seq| {
            let mut c = client.clone();
            async move {
                let ops: Vec<TxnOp> = batch_keys(worker, seq)
                    .map(|n| TxnOp::put(key(n), kv_value(n), None))
                    .collect();
                c.txn(Txn::new().and_then(ops))
                    .await
                    .map(|_| BATCH as u64)
                    .map_err(|e| e.to_string())
            }
        })
        .await
    }

    async fn read(
        &self,
        node: usize,
        worker: usize,
        seq: u64,
        linearizable: bool,
    ) -> Result<u64, String> {
        let mut c = self.clients.get(node).ok_or("no such node")?.clone();
        let options = if linearizable {
            None
        } else {
            Some(GetOptions::new().with_serializable())
        };
        c.get(key(key_number(worker, seq, 1 << 40)), options)
            .await
            .map(|_| 1)
            .map_err(|e| e.to_string())
    }

    async fn leader(&self) -> Option<usize> {
        let id = self.leader_id().await?;
        let node = self.ids.iter().position(|m| *m == id).or_else(|| {
            // Before the member ids are known (start-up), any answer will do.
            self.ids.is_empty().then_some(0)
        })?;
        self.write_node.store(node, Ordering::Relaxed);
        Some(node)
    }

    async fn write_at(&self, node: usize, seq: u64, timeout: Duration) -> Result<(), WriteFailure> {
        let fail = |reason: String| WriteFailure {
            leader_hint: None,
            reason,
        };
        let mut c = self
            .clients
            .get(node)
            .ok_or_else(|| fail("no such node".into()))?
            .clone();
        match tokio::time::timeout(timeout, c.put(key(seq), kv_value(seq), None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail("no answer in time".into())),
        }
    }

    fn kill(&self, node: usize) -> Result<(), String> {
        self.with_members(|members| {
            let m = members.get_mut(node).ok_or("no such member")?;
            if let Some(mut child) = m.child.take() {
                child
                    .kill()
                    .map_err(|e| format!("killing {}: {e}", m.name))?;
                let _ = child.wait();
            }
            Ok(())
        })
    }

    fn restart(&self, node: usize) -> Result<(), String> {
        let url = self.peer_url(node).ok_or("no such member")?;
        self.spawn(node, &url)
    }

    async fn transfer(&self, from: usize, to: usize) -> Result<(), String> {
        let target = *self.ids.get(to).ok_or("no such member")?;
        let mut c = self.clients.get(from).ok_or("no such member")?.clone();
        c.move_leader(target)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn healthy(&self) -> bool {
        let mut leaders = Vec::new();
        for node in 0..self.clients.len() {
            match self.status(node).await {
                Some(s) if s.leader() != 0 => leaders.push(s.leader()),
                _ => return false,
            }
        }
        !leaders.is_empty() && leaders.iter().all(|l| *l == leaders[0])
    }

    fn shutdown(&self) {
        self.with_members(|members| {
            for m in members.iter_mut() {
                if let Some(mut c) = m.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        });
        if let Ok(mut d) = self.dir.lock() {
            d.take();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `etcd` program: `$ETCD_BIN`, else `etcd` on the `PATH`.
pub fn find_etcd() -> Option<PathBuf> {
    super::host::find_program("ETCD_BIN", "etcd")
}
