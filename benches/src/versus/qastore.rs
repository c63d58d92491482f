//! The QAStore side: three `qastore serve` processes on loopback with their default settings,
//! driven through the client library.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qastore_client::{Client, ClientConfig, Ingestor, IngestorConfig};
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;

use super::{batch_keys, key, key_number, Shape, System, WriteFailure, BATCH};
use qastore_testkit::load::{closed_loop, LoadResult, Window};
use qastore_testkit::workload::Workload;
use qastore_testkit::{ClusterSpec, ProcCluster};

/// A three-node QAStore cluster of child processes.
pub struct QaCluster {
    cluster: Mutex<ProcCluster>,
    dir: Mutex<Option<tempfile::TempDir>>,
    client: Arc<Client>,
    endpoints: Vec<String>,
    workload: Mutex<Workload>,
}

/// An account update of about 128 bytes (16-byte user id as the key): the QAStore record closest
/// to a 16-byte key with a 128-byte value.
pub fn kv_record(n: u64) -> pb::Record {
    let v = n as f64;
    pb::Record {
        kind: Some(pb::record::Kind::AccountUpdate(pb::AccountUpdate {
            user_id: key(n),
            currency: "CNY".into(),
            pre_balance: 1_000_000.0 + v,
            deposit: 1.5 + v,
            withdraw: 2.5 + v,
            static_balance: 1_000_001.0 + v,
            close_profit: 3.5 + v,
            commission: 4.5 + v,
            position_profit: 5.5 + v,
            float_profit: 6.5 + v,
            balance: 1_000_002.0 + v,
            margin: 7.5 + v,
            available: 999_990.0 + v,
            ..Default::default()
        })),
    }
}

/// The trading day the exchange is in now, by the built-in calendar.
fn current_trading_day() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    qastore_exchange::calendar::TradingCalendar::builtin().trading_day_at(now)
}

impl QaCluster {
    /// Starts three nodes of the `qastore` program at `exe` in a new temporary directory and
    /// waits for a leader. `stream_writes`: the client's writes go on its write streams
    /// (else each is a unary call); `settings`: TOML added to every node's config; `tls`:
    /// the nodes and the client run mutual TLS, with certificates made for the run.
    pub async fn start(
        exe: &Path,
        stream_writes: bool,
        settings: &str,
        tls: bool,
    ) -> Result<QaCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("qastore-bench-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let mut spec = ClusterSpec::local(exe, dir.path(), 3, "qastore-bench");
        spec.settings = settings.to_string();
        spec.tls = tls;
        let mut cluster = ProcCluster::create(spec)?;
        let client_tls = cluster.client_tls().cloned();
        for id in 1..=3 {
            cluster.spawn(id, id == 1)?;
        }
        let endpoints = cluster.endpoints();
        let client = Client::new(
            &endpoints,
            ClientConfig {
                client_id: format!("bench-{}", std::process::id()),
                stream_writes,
                tls: client_tls,
                ..ClientConfig::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let sys = QaCluster {
            cluster: Mutex::new(cluster),
            dir: Mutex::new(Some(dir)),
            client: Arc::new(client),
            endpoints,
            // Today's data, as an exchange writes it: records of closed days would have the
            // nodes convert those days to Parquet (inside apply, on every node) during the run.
            workload: Mutex::new(Workload::new(7, 8, 50).from_day(current_trading_day())),
        };
        super::wait_healthy(&sys, Duration::from_secs(60)).await?;
        Ok(sys)
    }

    /// The nodes' API addresses, node 0 first.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The client library's client of the cluster.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    fn record(&self, worker: usize, seq: u64, shape: Shape) -> pb::Record {
        match shape {
            Shape::Kv => kv_record(key_number(worker, seq, 0)),
            Shape::Exchange => match self.workload.lock() {
                Ok(mut w) => w.next_pb(),
                Err(poisoned) => poisoned.into_inner().next_pb(),
            },
        }
    }

    async fn write(&self, records: Vec<pb::Record>) -> Result<u64, String> {
        let n = records.len() as u64;
        self.client
            .write(records, pb::AckLevel::Quorum)
            .await
            .map(|_| n)
            .map_err(|e| e.to_string())
    }

    async fn status(&self, node: usize) -> Option<pb::NodeStatus> {
        let mut admin = self.client.admin_at(self.endpoints.get(node)?).ok()?;
        let mut req = tonic::Request::new(pb::NodeStatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        admin
            .get_node_status(req)
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    fn with_cluster<T>(&self, f: impl FnOnce(&mut ProcCluster) -> T) -> T {
        match self.cluster.lock() {
            Ok(mut c) => f(&mut c),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl System for QaCluster {
    /// The process ids of the running nodes.
    async fn write_stages(&self) -> Option<qastore_client::StageCounts> {
        self.client
            .write_stages()
            .await
            .inspect_err(|e| eprintln!("  QAStore: reading the write stages failed: {e}"))
            .ok()
    }

    fn pids(&self) -> Vec<u32> {
        self.with_cluster(|c| {
            c.ids()
                .into_iter()
                .filter_map(|id| c.node(id).and_then(|n| n.pid()))
                .collect()
        })
    }

    fn name(&self) -> &'static str {
        "QAStore"
    }

    fn nodes(&self) -> usize {
        self.endpoints.len()
    }

    async fn put(&self, worker: usize, seq: u64, shape: Shape) -> Result<u64, String> {
        let record = self.record(worker, seq, shape);
        self.write(vec![record]).await
    }

    async fn batched_row(&self, clients: usize, window: Window) -> LoadResult {
        let ingestor = Arc::new(Ingestor::start(
            self.client.clone(),
            IngestorConfig::default(),
        ));
        let feeder = ingestor.clone();
        let result = closed_loop(clients, window, move |worker, seq| {
            let ingestor = feeder.clone();
            async move {
                let mut waiting = Vec::with_capacity(BATCH);
                for n in batch_keys(worker, seq) {
                    waiting.push(ingestor.submit(kv_record(n)).map_err(|e| e.to_string())?);
                }
                for done in waiting {
                    done.await
                        .map_err(|_| "the ingestor dropped a record".to_string())?
                        .map_err(|e| e.to_string())?;
                }
                Ok(BATCH as u64)
            }
        })
        .await;
        if let Ok(ingestor) = Arc::try_unwrap(ingestor) {
            ingestor.close().await;
        }
        result
    }

    async fn read(
        &self,
        node: usize,
        worker: usize,
        seq: u64,
        linearizable: bool,
    ) -> Result<u64, String> {
        let addr = self.endpoints.get(node).ok_or("no such node")?;
        let mut store = self.client.store_at(addr).map_err(|e| e.to_string())?;
        let consistency = if linearizable {
            pb::Consistency::Linearizable
        } else {
            pb::Consistency::Local
        };
        let req = pb::GetAccountsRequest {
            user_id: key(key_number(worker, seq, 1 << 40)),
            currency: "CNY".into(),
            read: Some(pb::ReadOptions {
                consistency: consistency as i32,
                ..Default::default()
            }),
        };
        store
            .get_accounts(self.client.request(req))
            .await
            .map(|_| 1)
            .map_err(|s| s.message().to_string())
    }

    async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for node in 0..self.nodes() {
            if let Some(s) = self.status(node).await {
                if s.role == pb::Role::Leader as i32 && best.is_none_or(|(t, _)| s.term > t) {
                    best = Some((s.term, node));
                }
            }
        }
        best.map(|(_, n)| n)
    }

    async fn write_at(&self, node: usize, seq: u64, timeout: Duration) -> Result<(), WriteFailure> {
        let fail = |reason: String, leader_hint| WriteFailure {
            leader_hint,
            reason,
        };
        let addr = self
            .endpoints
            .get(node)
            .ok_or_else(|| fail("no such node".into(), None))?;
        let mut store = self
            .client
            .store_at(addr)
            .map_err(|e| fail(e.to_string(), None))?;
        let mut req = tonic::Request::new(pb::WriteRequest {
            client_id: self.client.options().client_id.clone(),
            request_id: self.client.next_request_id(),
            records: vec![kv_record(seq)],
            ack: pb::AckLevel::Quorum as i32,
        });
        req.set_timeout(timeout);
        let started = Instant::now();
        let answer = tokio::time::timeout(timeout, store.write(req)).await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => {
                let hint = api_metadata::leader_hint(status.metadata())
                    .and_then(|a| self.endpoints.iter().position(|e| e == a));
                Err(fail(status.message().to_string(), hint))
            }
            Err(_) => Err(fail(
                format!("no answer in {} ms", started.elapsed().as_millis()),
                None,
            )),
        }
    }

    fn kill(&self, node: usize) -> Result<(), String> {
        self.with_cluster(|c| c.kill(node as u64 + 1))
            .map_err(String::from)
    }

    fn restart(&self, node: usize) -> Result<(), String> {
        self.with_cluster(|c| c.spawn(node as u64 + 1, false))
            .map_err(String::from)
    }

    async fn transfer(&self, from: usize, to: usize) -> Result<(), String> {
        let addr = self.endpoints.get(from).ok_or("no such node")?;
        let mut admin = self.client.admin_at(addr).map_err(|e| e.to_string())?;
        admin
            .transfer_leadership(self.client.request(pb::TransferLeadershipRequest {
                to_node_id: to as u64 + 1,
                wait_ms: 5000,
            }))
            .await
            .map(|_| ())
            .map_err(|s| s.message().to_string())
    }

    async fn healthy(&self) -> bool {
        let mut leaders = Vec::new();
        for node in 0..self.nodes() {
            match self.status(node).await {
                Some(s) if s.apply_lag < 1000 => leaders.push(s.leader_id),
                _ => return false,
            }
        }
        leaders.iter().all(|l| l.is_some() && *l == leaders[0])
    }

    fn shutdown(&self) {
        self.with_cluster(|c| c.stop_all(Duration::from_secs(5)));
        if let Ok(mut d) = self.dir.lock() {
            d.take();
        }
    }
}
