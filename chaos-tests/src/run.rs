//! One chaos run: start the cluster, run the workload, inject faults, heal, check, report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qastore_client::Client;
use qastore_proto::v1 as pb;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::checker::{check_history, HistoryCheck};
use crate::cluster::ChaosCluster;
use crate::history::{Event, Op, Outcome, INFINITY};
use crate::nemesis::{inject, Fault, FaultStatus, Nemesis};
use crate::subscribers::{self, SubscriberReport};
use crate::workload::{self, Recorder, WorkloadConfig, ORDER_USER};
use crate::HarnessError;

/// How a run goes.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Nodes (3 or 5).
    pub nodes: usize,
    /// How long faults are injected.
    pub fault_phase: Duration,
    /// Quiet time before and after the faults.
    pub quiet: Duration,
    /// How long each fault is held.
    pub hold: Duration,
    /// The faults to draw from.
    pub nemeses: Vec<Nemesis>,
    /// Seed of every random choice (printed; a run replays from it).
    pub seed: u64,
    /// Concurrent clients.
    pub clients: u32,
    /// Registers.
    pub keys: u32,
    /// Where configs, data, logs and the report go.
    pub dir: PathBuf,
    /// Successful operations needed in each phase for the run to count.
    pub min_ok_per_phase: usize,
    /// Environment variables of the node processes (e.g. `FAILPOINTS`).
    pub node_env: Vec<(String, String)>,
    /// Run the cluster and every client on mutual TLS (certificates made for the run).
    pub tls: bool,
}

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every check passed with enough operations.
    Valid,
    /// A check failed.
    Invalid,
    /// The harness could not run or measure it.
    Inconclusive,
}

impl Verdict {
    /// The exit code: 0 valid, 1 invalid, 2 inconclusive.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Inconclusive => 2,
        }
    }
}

/// Min, median and max.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: u64,
    /// Median.
    pub median: u64,
    /// Largest.
    pub max: u64,
    /// How many.
    pub count: usize,
}

fn spread(mut v: Vec<u64>) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_unstable();
    Spread {
        min: v[0],
        median: v[v.len() / 2],
        max: v[v.len() - 1],
        count: v.len(),
    }
}

/// Operations per phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseCounts {
    /// Succeeded.
    pub ok: usize,
    /// Certainly failed.
    pub failed: usize,
    /// Unknown outcome.
    pub unknown: usize,
    /// Successful operations per second.
    pub ok_per_sec: f64,
}

/// What the run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The settings (with the seed).
    pub settings: RunConfig,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in sentences.
    pub reasons: Vec<String>,
    /// The faults, in order.
    pub timeline: Vec<Fault>,
    /// History checks.
    pub history_check: HistoryCheck,
    /// Acknowledged inserts missing on some node.
    pub lost: Vec<String>,
    /// Inserts applied more than once.
    pub duplicated: Vec<String>,
    /// Whether every node reached the same state hash after the last heal.
    pub converged: bool,
    /// Each subscriber's events against the committed journal.
    pub subscriptions: Vec<SubscriberReport>,
    /// Time to a new leader after each leader-affecting fault, ms.
    pub time_to_new_leader_ms: Spread,
    /// Write-unavailability window after each leader-affecting fault, ms.
    pub write_unavailable_ms: Spread,
    /// Operations before, during and after the faults.
    pub before: PhaseCounts,
    /// During.
    pub during: PhaseCounts,
    /// After.
    pub after: PhaseCounts,
    /// Every operation (written beside the report as JSON lines: it can be large).
    #[serde(skip)]
    pub history: Vec<Event>,
}

impl Report {
    /// Writes `report.json` (everything but the history) and `history.jsonl` (one operation
    /// per line) into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let report = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), report)?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?);
        for e in &self.history {
            serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let installed = self
            .timeline
            .iter()
            .filter(|f| f.status == FaultStatus::Installed)
            .count();
        let p = |c: &PhaseCounts| {
            format!(
                "{} ok ({:.0}/s), {} failed, {} unknown",
                c.ok, c.ok_per_sec, c.failed, c.unknown
            )
        };
        format!(
            "chaos run: {:?} (seed {})\n{}\n  faults: {} installed of {}\n  before: {}\n  during: {}\n  after:  {}\n  time to new leader (ms): min {} median {} max {} over {}\n  writes unavailable (ms): min {} median {} max {} over {}\n  linearizability: {} registers, {} not linearizable, {} unknown; {} bad local/bounded reads\n  lost acknowledged inserts: {}, duplicated: {}, replicas converged: {}\n{}",
            self.verdict,
            self.settings.seed,
            self.reasons.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"),
            installed,
            self.timeline.len(),
            p(&self.before),
            p(&self.during),
            p(&self.after),
            self.time_to_new_leader_ms.min,
            self.time_to_new_leader_ms.median,
            self.time_to_new_leader_ms.max,
            self.time_to_new_leader_ms.count,
            self.write_unavailable_ms.min,
            self.write_unavailable_ms.median,
            self.write_unavailable_ms.max,
            self.write_unavailable_ms.count,
            self.history_check.keys,
            self.history_check.not_linearizable.len(),
            self.history_check.unknown.len(),
            self.history_check.bad_local_reads.len(),
            self.lost.len(),
            self.duplicated.len(),
            self.converged,
            self.subscriptions_summary(),
        )
    }
}

impl Report {
    /// The subscriptions' line of the summary.
    fn subscriptions_summary(&self) -> String {
        let s = &self.subscriptions;
        let sum = |f: fn(&SubscriberReport) -> usize| s.iter().map(f).sum::<usize>();
        format!(
            "  subscriptions: {} subscribers, {} events received, {} checked; {} gaps, {} duplicates, {} out of order, {} unexpected, {} altered; {} resumes\n",
            s.len(),
            sum(|r| r.check.received),
            sum(|r| r.check.expected),
            sum(|r| r.check.gaps),
            sum(|r| r.check.duplicates.len()),
            sum(|r| r.check.out_of_order.len()),
            sum(|r| r.check.unexpected.len()),
            sum(|r| r.check.altered.len()),
            s.iter().map(|r| r.reconnects).sum::<u64>(),
        )
    }
}

fn counts(events: &[Event], from: u64, to: u64) -> PhaseCounts {
    let mut c = PhaseCounts::default();
    for e in events.iter().filter(|e| e.invoke >= from && e.invoke < to) {
        match e.outcome {
            Outcome::Ok { .. } => c.ok += 1,
            Outcome::Fail(_) => c.failed += 1,
            Outcome::Unknown(_) => c.unknown += 1,
        }
    }
    let secs = (to.saturating_sub(from)) as f64 / 1e9;
    c.ok_per_sec = if secs > 0.0 { c.ok as f64 / secs } else { 0.0 };
    c
}

/// Runs once.
pub async fn run(settings: RunConfig) -> Report {
    match run_inner(&settings).await {
        Ok(r) => r,
        Err(e) => Report {
            settings,
            verdict: Verdict::Inconclusive,
            reasons: vec![format!("harness: {}", e.0)],
            timeline: Vec::new(),
            history_check: HistoryCheck::default(),
            lost: Vec::new(),
            duplicated: Vec::new(),
            converged: false,
            subscriptions: Vec::new(),
            time_to_new_leader_ms: Spread::default(),
            write_unavailable_ms: Spread::default(),
            before: PhaseCounts::default(),
            during: PhaseCounts::default(),
            after: PhaseCounts::default(),
            history: Vec::new(),
        },
    }
}

async fn run_inner(s: &RunConfig) -> Result<Report, HarnessError> {
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let mut cluster = ChaosCluster::start(s.nodes, &s.dir, &s.node_env, s.tls).await?;
    let admin = cluster.client("chaos-admin", Duration::from_millis(500), Duration::ZERO)?;
    let subscribers = subscribers::start(&cluster)?;
    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let nodes: Vec<(u64, String)> = cluster
        .nodes
        .values()
        .map(|n| (n.id, n.api.to_string()))
        .collect();
    let endpoints = cluster.endpoints();
    let clients = (0..s.clients)
        .map(|p| {
            Client::new(
                &endpoints,
                qastore_client::ClientConfig {
                    client_id: format!("chaos-{p}"),
                    call_timeout: Duration::from_millis(1000),
                    retry_for: Duration::from_millis(2500),
                    tls: cluster.client_tls().cloned(),
                    ..Default::default()
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HarnessError(format!("workload client: {e}")))?;
    let work = tokio::spawn(workload::run(
        WorkloadConfig {
            keys: s.keys,
            nodes,
            op_timeout: Duration::from_secs(3),
            seed: s.seed,
        },
        clients,
        recorder.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(s.quiet).await;
    let faults_from = recorder.now();
    let mut timeline = Vec::new();
    let deadline = Instant::now() + s.fault_phase;
    let mut harness_error = None;
    while Instant::now() < deadline {
        let nemesis = s.nemeses[rng.random_range(0..s.nemeses.len())];
        let r = recorder.clone();
        let fault = inject(&mut cluster, &admin, nemesis, s.hold, &mut rng, move || {
            r.now()
        })
        .await;
        tracing::info!(?fault, "fault");
        timeline.push(fault);
        if let Err(e) = cluster.healthy(Duration::from_secs(30)).await {
            harness_error = Some(format!("after a fault: {}", e.0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let faults_to = recorder.now();
    tokio::time::sleep(s.quiet).await;
    stop.store(true, Ordering::Relaxed);
    let _ = work.await;
    let ended = recorder.now();
    let events = recorder.events();

    let mut reasons = Vec::new();
    if let Some(e) = harness_error {
        reasons.push(format!("harness: {e}"));
    }
    for f in &timeline {
        if let FaultStatus::Indeterminate(why) = &f.status {
            reasons.push(format!(
                "{:?} on {:?} indeterminate: {why}",
                f.nemesis, f.target
            ));
        }
    }
    let history_check = check_history(&events, Duration::from_secs(10));
    let (lost, duplicated) = read_back(&cluster, &admin, &events).await?;
    let subscriptions = match check_subscribers(&cluster, &admin, subscribers).await {
        Ok(s) => s,
        Err(e) => {
            reasons.push(format!("harness: subscriptions: {}", e.0));
            Vec::new()
        }
    };
    let converged = converge(&cluster, &admin).await;

    // Leader-affecting faults: time to a new leader, and the gap until a write succeeded.
    let mut to_leader = Vec::new();
    let mut unavailable = Vec::new();
    for f in timeline
        .iter()
        .filter(|f| f.nemesis.affects_leader() && f.status == FaultStatus::Installed)
    {
        if let Some(ms) = f.time_to_new_leader_ms {
            to_leader.push(ms);
        }
        let first_ok = events
            .iter()
            .filter(|e| {
                matches!(e.op, Op::Write { .. } | Op::Insert { .. })
                    && e.ok()
                    && e.complete != INFINITY
                    && e.complete > f.installed_at
            })
            .map(|e| e.complete)
            .min();
        if let Some(t) = first_ok {
            unavailable.push((t - f.installed_at) / 1_000_000);
        }
    }
    let before = counts(&events, 0, faults_from);
    let during = counts(&events, faults_from, faults_to);
    let after = counts(&events, faults_to, ended);

    if !history_check.not_linearizable.is_empty() {
        reasons.push(format!(
            "registers not linearizable: {:?}",
            history_check.not_linearizable
        ));
    }
    if !history_check.unknown.is_empty() {
        reasons.push(format!(
            "linearizability undecided (counts as failure): {:?}",
            history_check.unknown
        ));
    }
    if !history_check.bad_local_reads.is_empty() {
        reasons.push(format!(
            "{} local/bounded reads inconsistent with their applied index, e.g. {}",
            history_check.bad_local_reads.len(),
            history_check.bad_local_reads[0]
        ));
    }
    if !lost.is_empty() {
        reasons.push(format!(
            "{} acknowledged inserts lost, e.g. {}",
            lost.len(),
            lost[0]
        ));
    }
    if !duplicated.is_empty() {
        reasons.push(format!(
            "{} inserts applied more than once, e.g. {}",
            duplicated.len(),
            duplicated[0]
        ));
    }
    if !converged {
        reasons.push("the replicas did not converge to one state hash".into());
    }
    let (bad_subscriptions, unmeasured_subscriptions) = judge_subscriptions(&subscriptions);
    let invalid = !history_check.ok()
        || !lost.is_empty()
        || !duplicated.is_empty()
        || !converged
        || !bad_subscriptions.is_empty();
    reasons.extend(bad_subscriptions);
    reasons.extend(unmeasured_subscriptions);
    let too_few = [
        ("before", before.ok),
        ("during", during.ok),
        ("after", after.ok),
    ]
    .into_iter()
    .filter(|(_, n)| *n < s.min_ok_per_phase)
    .map(|(p, n)| format!("only {n} operations succeeded {p} the faults"))
    .collect::<Vec<_>>();
    let inconclusive =
        !reasons.is_empty() && !invalid || !too_few.is_empty() || timeline.is_empty();
    reasons.extend(too_few);
    let verdict = if invalid {
        Verdict::Invalid
    } else if inconclusive {
        Verdict::Inconclusive
    } else {
        reasons.push("every check passed".into());
        Verdict::Valid
    };
    cluster.stop_all();
    Ok(Report {
        settings: s.clone(),
        verdict,
        reasons,
        timeline,
        history_check,
        lost,
        duplicated,
        converged,
        subscriptions,
        time_to_new_leader_ms: spread(to_leader),
        write_unavailable_ms: spread(unavailable),
        before,
        during,
        after,
        history: events,
    })
}

/// Reads every inserted order back from every node (after it has applied everything
/// acknowledged): acknowledged ones must all be there, each inserted once.
async fn read_back(
    cluster: &ChaosCluster,
    client: &Client,
    events: &[Event],
) -> Result<(Vec<String>, Vec<String>), HarnessError> {
    let acked: Vec<(&str, u64)> = events
        .iter()
        .filter_map(|e| match (&e.op, &e.outcome) {
            (Op::Insert { order }, Outcome::Ok { index, .. }) => Some((order.as_str(), *index)),
            _ => None,
        })
        .collect();
    let max_index = acked.iter().map(|(_, i)| *i).max().unwrap_or(0);
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    for n in cluster.nodes.values() {
        let mut store = client
            .store_at(&n.api.to_string())
            .map_err(|e| HarnessError(e.to_string()))?;
        let mut req = tonic::Request::new(pb::ListOrdersRequest {
            user_id: ORDER_USER.into(),
            only_alive: false,
            with_history: true,
            read: Some(pb::ReadOptions {
                consistency: pb::Consistency::Local as i32,
                max_staleness_ms: 0,
                min_applied_index: max_index,
            }),
        });
        req.set_timeout(Duration::from_secs(30));
        let orders = store
            .list_orders(req)
            .await
            .map_err(|s| HarnessError(format!("reading back from node {}: {}", n.id, s.message())))?
            .into_inner()
            .orders;
        let mut present = std::collections::HashMap::new();
        for v in &orders {
            let Some(o) = v.state.as_ref().and_then(|s| s.order.as_ref()) else {
                continue;
            };
            let inserts = v
                .history
                .iter()
                .filter(|h| {
                    matches!(
                        h.record.as_ref().and_then(|r| r.kind.as_ref()),
                        Some(pb::record::Kind::OrderInsert(_))
                    )
                })
                .count();
            present.insert(o.order_id.clone(), inserts);
        }
        for (id, _) in &acked {
            if !present.contains_key(*id) {
                lost.push(format!("{id} on node {}", n.id));
            }
        }
        for (id, inserts) in present {
            if inserts != 1 {
                duplicated.push(format!("{id} inserted {inserts} times on node {}", n.id));
            }
        }
    }
    Ok((lost, duplicated))
}

/// Catches every subscriber up with a fresh index of the leader's, stops them, and checks
/// each against the journal read back from the leader.
async fn check_subscribers(
    cluster: &ChaosCluster,
    client: &Client,
    subs: Vec<subscribers::Subscriber>,
) -> Result<Vec<SubscriberReport>, HarnessError> {
    let leader = cluster
        .leader(client)
        .await
        .ok_or_else(|| HarnessError("no leader after the run".into()))?;
    let addr = cluster
        .node(leader)
        .map(|n| n.api.to_string())
        .ok_or_else(|| HarnessError(format!("no node {leader}")))?;
    let mut admin = client
        .admin_at(&addr)
        .map_err(|e| HarnessError(e.to_string()))?;
    let through = admin
        .hash_mark(pb::HashMarkRequest {})
        .await
        .map_err(|s| HarnessError(format!("a fresh index: {}", s.message())))?
        .into_inner()
        .index;
    subscribers::finish(subs, client, &addr, through).await
}

/// The reasons the subscriptions make a run invalid (a stream that skipped, repeated,
/// reordered or altered an event, or ended quietly on its own), and those that leave it
/// unmeasured (a subscriber that never caught up, or had nothing to check).
fn judge_subscriptions(subs: &[SubscriberReport]) -> (Vec<String>, Vec<String>) {
    let mut bad = Vec::new();
    let mut unmeasured = Vec::new();
    for s in subs {
        let who = format!("subscriber on node {} ({})", s.node, s.filter);
        if !s.check.ok() {
            bad.push(format!("{who}: {}", s.check.describe()));
        }
        match &s.ended {
            Some(e) if !s.ended_out_of_range => bad.push(format!("{who} ended: {e}")),
            Some(_) => {}
            None if !s.caught_up => unmeasured.push(format!(
                "{who} had everything only up to index {} when stopped",
                s.covered
            )),
            None if s.check.expected == 0 => {
                unmeasured.push(format!("{who} had no event to check"));
            }
            None => {}
        }
    }
    (bad, unmeasured)
}

/// Whether every node reaches the same state hash at a fresh hash mark.
async fn converge(cluster: &ChaosCluster, client: &Client) -> bool {
    let Some(leader) = cluster.leader(client).await else {
        return false;
    };
    let Some(addr) = cluster.node(leader).map(|n| n.api.to_string()) else {
        return false;
    };
    let Ok(mut admin) = client.admin_at(&addr) else {
        return false;
    };
    let Ok(mark) = admin.hash_mark(pb::HashMarkRequest {}).await else {
        return false;
    };
    let index = mark.into_inner().index;
    let mut hashes = std::collections::BTreeSet::new();
    for n in cluster.nodes.values() {
        let Ok(mut a) = client.admin_at(&n.api.to_string()) else {
            return false;
        };
        let mut req = tonic::Request::new(pb::StateHashRequest {
            index,
            wait_ms: 30_000,
        });
        req.set_timeout(Duration::from_secs(35));
        match a.state_hash(req).await {
            Ok(r) => {
                hashes.insert(r.into_inner().hash);
            }
            Err(_) => return false,
        }
    }
    hashes.len() == 1
}
