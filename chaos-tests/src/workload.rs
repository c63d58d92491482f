//! The workload: concurrent clients, one operation in flight each, over `keys` registers
//! (accounts whose balance is the register's value; every written value is unique) plus unique
//! order inserts. Reads go to random nodes at random consistencies. Every operation has a
//! deadline and lands in the shared history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qastore_client::{Client, ClientError};
use qastore_proto::v1 as pb;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

use crate::history::{Event, Nanos, Op, Outcome, ReadKind, INFINITY};

/// How the workload runs.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Registers.
    pub keys: u32,
    /// Every node's client address, by node id.
    pub nodes: Vec<(u64, String)>,
    /// Deadline of one operation (retries included).
    pub op_timeout: Duration,
    /// Seed.
    pub seed: u64,
}

/// The shared history and the clock it is written against.
#[derive(Debug, Clone)]
pub struct Recorder {
    started: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    /// A recorder whose time 0 is now.
    pub fn new() -> Self {
        Recorder {
            started: Instant::now(),
            events: Arc::default(),
        }
    }

    /// Now, in nanoseconds since the start.
    pub fn now(&self) -> Nanos {
        self.started.elapsed().as_nanos() as Nanos
    }

    fn push(&self, e: Event) {
        self.events.lock().push(e);
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// The user id of register `key`.
pub fn user_of(key: u32) -> String {
    format!("k{key:04}")
}

fn account(key: u32, value: u64) -> pb::Record {
    pb::Record {
        kind: Some(pb::record::Kind::AccountUpdate(pb::AccountUpdate {
            user_id: user_of(key),
            currency: "CNY".into(),
            balance: value as f64,
            ..Default::default()
        })),
    }
}

/// The user the inserted orders belong to.
pub const ORDER_USER: &str = "chaos-orders";

fn order(id: &str) -> pb::Record {
    qastore_testkit::samples::order(ORDER_USER, id)
}

/// Whether a failed write certainly did not happen: refused before it reached the log.
fn definitely_failed(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(Code::InvalidArgument | Code::AlreadyExists | Code::ResourceExhausted)
    )
}

/// Runs the clients until `stop`, one concurrent process per client (numbered from 0).
pub async fn run(
    settings: WorkloadConfig,
    clients: Vec<Client>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let mut tasks = Vec::new();
    for (p, client) in (0u32..).zip(clients) {
        let (settings, recorder, stop) = (settings.clone(), recorder.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(settings.seed ^ (u64::from(p) << 32));
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let roll: f64 = rng.random();
                if roll < 0.35 {
                    let key = rng.random_range(0..settings.keys);
                    let value = (u64::from(p) + 1) * 1_000_000_000 + seq;
                    write(
                        &client,
                        &recorder,
                        p,
                        Op::Write { key, value },
                        vec![account(key, value)],
                        settings.op_timeout,
                    )
                    .await;
                } else if roll < 0.45 {
                    let id = format!("p{p}-{seq}");
                    write(
                        &client,
                        &recorder,
                        p,
                        Op::Insert { order: id.clone() },
                        vec![order(&id)],
                        settings.op_timeout,
                    )
                    .await;
                } else {
                    let key = rng.random_range(0..settings.keys);
                    let (node, addr) =
                        settings.nodes[rng.random_range(0..settings.nodes.len())].clone();
                    let kind = match rng.random_range(0..4) {
                        0 | 1 => ReadKind::Linearizable,
                        2 => ReadKind::Bounded,
                        _ => ReadKind::Local,
                    };
                    read(
                        &client,
                        &recorder,
                        p,
                        key,
                        node,
                        &addr,
                        kind,
                        settings.op_timeout,
                    )
                    .await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn write(
    client: &Client,
    rec: &Recorder,
    process: u32,
    op: Op,
    records: Vec<pb::Record>,
    timeout: Duration,
) {
    let invoke = rec.now();
    let id = client.next_request_id();
    let r = tokio::time::timeout(
        timeout,
        client.write_with_id(id, records, pb::AckLevel::Quorum),
    )
    .await;
    let (complete, outcome) = match r {
        Ok(Ok((resp, _))) => (
            rec.now(),
            Outcome::Ok {
                index: resp.log_index,
                value: None,
                from: 0,
            },
        ),
        Ok(Err(e)) if definitely_failed(&e) => (rec.now(), Outcome::Fail(e.to_string())),
        Ok(Err(e)) => (INFINITY, Outcome::Unknown(e.to_string())),
        Err(_) => (INFINITY, Outcome::Unknown("timed out".into())),
    };
    rec.push(Event {
        process,
        op,
        invoke,
        complete,
        outcome,
    });
}

#[allow(clippy::too_many_arguments)]
async fn read(
    client: &Client,
    rec: &Recorder,
    process: u32,
    key: u32,
    node: u64,
    addr: &str,
    kind: ReadKind,
    timeout: Duration,
) {
    let consistency = match kind {
        ReadKind::Linearizable => pb::Consistency::Linearizable,
        ReadKind::Bounded => pb::Consistency::Bounded,
        ReadKind::Local => pb::Consistency::Local,
    };
    let invoke = rec.now();
    let Ok(mut store) = client.store_at(addr) else {
        return;
    };
    let mut req = tonic::Request::new(pb::GetAccountsRequest {
        user_id: user_of(key),
        currency: "CNY".into(),
        read: Some(pb::ReadOptions {
            consistency: consistency as i32,
            max_staleness_ms: 1_000,
            min_applied_index: 0,
        }),
    });
    req.set_timeout(timeout);
    let r = tokio::time::timeout(timeout, store.get_accounts(req)).await;
    let outcome = match r {
        Ok(Ok(resp)) => {
            let resp = resp.into_inner();
            let value = resp.accounts.first().map_or(0, |a| a.balance as u64);
            let served = resp.served_by.unwrap_or_default();
            Outcome::Ok {
                index: served.applied_index,
                value: Some(value),
                from: served.from_applied_index,
            }
        }
        Ok(Err(s)) => Outcome::Fail(s.message().to_string()),
        Err(_) => Outcome::Fail("timed out".into()),
    };
    rec.push(Event {
        process,
        op: Op::Read { key, node, kind },
        invoke,
        complete: rec.now(),
        outcome,
    });
}
