//! Failover drills (how to run one: README.md, "Operating"). A drill first checks that the cluster
//! is healthy (every member reachable, a leader, followers caught up) and refuses otherwise. It
//! then keeps writing sentinel records, one at a time, each retried under its own request id until
//! acknowledged; takes leadership away (planned: transfer to the most caught-up follower; kill: the
//! leader's process dies); measures the time to a new leader and the window in which no write was
//! acknowledged; and reads every acknowledged sentinel back at `LINEARIZABLE`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use qastore_proto::v1 as pb;
use serde_json::{json, Value};

use crate::client::{Client, ClientConfig};

/// How leadership is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hand leadership to the most caught-up follower.
    Planned,
    /// Kill the leader's process.
    Kill,
}

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Failover within the objective and every acknowledged sentinel readable.
    Pass,
    /// The objective was missed, or an acknowledged sentinel is missing.
    Fail,
    /// The drill could not be run or measured.
    Inconclusive,
}

impl Mode {
    /// The mode as the command line names it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Planned => "planned",
            Mode::Kill => "kill",
        }
    }
}

impl Verdict {
    /// The verdict as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The exit code `ctl drill` ends with.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Inconclusive => 2,
        }
    }
}

/// What a drill measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// How leadership was taken away.
    pub mode: Mode,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in a sentence.
    pub reason: String,
    /// The leader before.
    pub old_leader: Option<u64>,
    /// The leader after.
    pub new_leader: Option<u64>,
    /// From taking leadership away to a new leader being seen.
    pub time_to_new_leader: Option<Duration>,
    /// From taking leadership away to the first write acknowledged after it.
    pub write_unavailable: Option<Duration>,
    /// The objective for `write_unavailable`.
    pub objective: Duration,
    /// Sentinels acknowledged.
    pub sentinels_acked: u64,
    /// Sentinels read back.
    pub sentinels_verified: u64,
}

impl Report {
    fn inconclusive(mode: Mode, objective: Duration, reason: String) -> Report {
        Report {
            mode,
            verdict: Verdict::Inconclusive,
            reason,
            old_leader: None,
            new_leader: None,
            time_to_new_leader: None,
            write_unavailable: None,
            objective,
            sentinels_acked: 0,
            sentinels_verified: 0,
        }
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        json!({
            "mode": self.mode.name(),
            "verdict": self.verdict.name(),
            "reason": self.reason,
            "old_leader": self.old_leader,
            "new_leader": self.new_leader,
            "time_to_new_leader_ms": ms(self.time_to_new_leader),
            "write_unavailable_ms": ms(self.write_unavailable),
            "objective_ms": self.objective.as_millis() as u64,
            "sentinels_acked": self.sentinels_acked,
            "sentinels_verified": self.sentinels_verified,
        })
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{} ms", d.as_millis()));
        let id = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        format!(
            "drill {mode}: {verdict}: {reason}\n  leader {old} -> {new}\n  time to new leader   {t}\n  writes unavailable   {w} (objective {o} ms)\n  sentinels            {v} of {a} acknowledged read back\n",
            mode = self.mode.name(),
            verdict = self.verdict.name().to_uppercase(),
            reason = self.reason,
            old = id(self.old_leader),
            new = id(self.new_leader),
            t = ms(self.time_to_new_leader),
            w = ms(self.write_unavailable),
            o = self.objective.as_millis(),
            v = self.sentinels_verified,
            a = self.sentinels_acked,
        )
    }
}

/// Settings of a drill.
#[derive(Debug, Clone)]
pub struct DrillConfig {
    /// How leadership is taken away.
    pub mode: Mode,
    /// The longest acceptable write outage (default: the leader's configured objective).
    pub max_unavailable: Option<Duration>,
    /// Refuse when a member is more entries behind than this.
    pub max_lag: u64,
    /// Give up waiting for a new leader or a write after this long.
    pub give_up_after: Duration,
}

fn sentinel(user: &str, seq: u64) -> pb::Record {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    pb::Record {
        kind: Some(pb::record::Kind::OrderInsert(pb::OrderInsert {
            user_id: user.to_string(),
            order_id: format!("s-{seq}"),
            exchange_id: "DRILL".into(),
            instrument_id: "DRILL".into(),
            direction: pb::Direction::Buy as i32,
            offset: pb::Offset::Open as i32,
            price_type: pb::PriceType::Limit as i32,
            limit_price: 1.0,
            volume_orign: 1,
            volume_left: 1,
            time_condition: pb::TimeCondition::Gfd as i32,
            volume_condition: pb::VolumeCondition::Any as i32,
            status: pb::OrderStatus::Alive as i32,
            insert_date_time: now,
            exchange_order_id: String::new(),
            frozen_margin: 0.0,
        })),
    }
}

/// Acknowledgement times of the sentinels, in order.
#[derive(Debug, Default)]
struct Sentinels {
    acked: Vec<(u64, Instant)>,
}

/// Writes sentinels one after another until `stop`; each is retried with its own request id
/// until acknowledged.
async fn write_sentinels(
    client: Arc<Client>,
    user: String,
    log: Arc<Mutex<Sentinels>>,
    stop: Arc<AtomicBool>,
) {
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let id = client.next_request_id();
        let record = sentinel(&user, seq);
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match client
                .write_with_id(id, vec![record.clone()], pb::AckLevel::Quorum)
                .await
            {
                Ok(_) => {
                    log.lock().acked.push((seq, Instant::now()));
                    break;
                }
                Err(e) if e.is_retryable() || e.code() == Some(tonic::Code::DeadlineExceeded) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a sentinel write was refused");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks the cluster is fit for a drill; returns the leader and its client address.
async fn health(client: &Client, max_lag: u64) -> Result<(u64, Vec<pb::MemberStatus>), String> {
    let (leader, addr) = client.find_leader().await.map_err(|e| e.to_string())?;
    let admin = client.admin_at(&addr).map_err(|e| e.to_string())?;
    let status = admin
        .clone()
        .cluster_status(client.request(pb::ClusterStatusRequest {}))
        .await
        .map_err(|e| format!("cluster status: {}", e.message()))?
        .into_inner();
    let voters = status.members.iter().filter(|m| m.voter).count();
    if voters < 3 {
        return Err(format!(
            "the cluster has {voters} voter(s); a failover needs at least 3"
        ));
    }
    for m in &status.members {
        if m.status.is_none() {
            return Err(format!("node {} is unreachable: {}", m.node_id, m.error));
        }
        if let Some(lag) = m.replication_lag {
            if lag > max_lag {
                return Err(format!(
                    "node {} is {lag} entries behind the leader (limit {max_lag})",
                    m.node_id
                ));
            }
        }
    }
    Ok((leader, status.members))
}

/// Runs a drill against the cluster `client` reaches. `kill` ends the leader's process (kill
/// mode only) and returns once it has ended.
pub async fn run<K, F>(
    client_of: impl Fn(ClientConfig) -> Result<Client, String>,
    settings: DrillConfig,
    kill: K,
) -> Report
where
    K: FnOnce(u64, String) -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let mut objective = settings.max_unavailable.unwrap_or(Duration::from_secs(10));
    let mode = settings.mode;
    let options = |retry_for| ClientConfig {
        client_id: format!("drill-{}", std::process::id()),
        call_timeout: Duration::from_millis(500),
        retry_for,
        ..ClientConfig::default()
    };
    let probe = match client_of(options(Duration::from_secs(5))) {
        Ok(c) => c,
        Err(e) => return Report::inconclusive(mode, objective, e),
    };
    let (old_leader, members) = match health(&probe, settings.max_lag).await {
        Ok(h) => h,
        Err(why) => return Report::inconclusive(mode, objective, format!("refused: {why}")),
    };
    let Some(leader_api) = members
        .iter()
        .find(|m| m.node_id == old_leader)
        .map(|m| m.api_addr.clone())
    else {
        return Report::inconclusive(mode, objective, "the leader is not a member".into());
    };
    if settings.max_unavailable.is_none() {
        if let Some(ms) = members
            .iter()
            .find(|m| m.node_id == old_leader)
            .and_then(|m| m.status.as_ref())
            .map(|s| s.drill_max_unavailable_ms)
            .filter(|ms| *ms > 0)
        {
            objective = Duration::from_millis(ms);
        }
    }
    let writer = match client_of(options(Duration::ZERO)) {
        Ok(c) => Arc::new(c),
        Err(e) => return Report::inconclusive(mode, objective, e),
    };
    let user = format!(
        "drill-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let log = Arc::new(Mutex::new(Sentinels::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(write_sentinels(
        writer.clone(),
        user.clone(),
        log.clone(),
        stop.clone(),
    ));
    // A steady baseline first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if log.lock().acked.is_empty() {
        stop.store(true, Ordering::Relaxed);
        let _ = task.await;
        return Report::inconclusive(
            mode,
            objective,
            "no sentinel write succeeded before the failover".into(),
        );
    }

    let mut began = Instant::now();
    let action = match mode {
        Mode::Planned => {
            let target = members
                .iter()
                .filter(|m| m.voter && m.node_id != old_leader)
                .min_by_key(|m| m.replication_lag.unwrap_or(u64::MAX))
                .map(|m| m.node_id);
            match target {
                None => Err("no follower to hand leadership to".to_string()),
                Some(to) => match probe.admin_at(&leader_api) {
                    Ok(mut admin) => admin
                        .transfer_leadership(probe.request(pb::TransferLeadershipRequest {
                            to_node_id: to,
                            wait_ms: settings.give_up_after.as_millis() as u64,
                        }))
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("transfer: {}", e.message())),
                    Err(e) => Err(e.to_string()),
                },
            }
        }
        // Measured from the moment the leader is gone: `kill` returns once it is.
        Mode::Kill => {
            let r = kill(old_leader, leader_api.clone()).await;
            began = Instant::now();
            r
        }
    };
    if let Err(e) = action {
        stop.store(true, Ordering::Relaxed);
        let _ = task.await;
        let mut r = Report::inconclusive(
            mode,
            objective,
            format!("taking leadership away failed: {e}"),
        );
        r.old_leader = Some(old_leader);
        return r;
    }

    // A new leader, as the surviving members see it.
    let mut new_leader = None;
    let mut time_to_new_leader = None;
    let survivors: Vec<String> = members
        .iter()
        .filter(|m| m.node_id != old_leader || mode == Mode::Planned)
        .map(|m| m.api_addr.clone())
        .collect();
    while began.elapsed() < settings.give_up_after && new_leader.is_none() {
        for addr in &survivors {
            let Ok(mut admin) = probe.admin_at(addr) else {
                continue;
            };
            if let Ok(r) = admin.members(probe.request(pb::MembersRequest {})).await {
                if let Some(l) = r.into_inner().leader_id.filter(|l| *l != old_leader) {
                    new_leader = Some(l);
                    time_to_new_leader = Some(began.elapsed());
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first write acknowledged after the failover began.
    let mut write_unavailable = None;
    while began.elapsed() < settings.give_up_after {
        let first = log
            .lock()
            .acked
            .iter()
            .find(|(_, t)| *t > began)
            .map(|(_, t)| *t);
        if let Some(t) = first {
            write_unavailable = Some(t - began);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A little steady state after, then stop writing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = task.await;
    let acked: Vec<u64> = log.lock().acked.iter().map(|(s, _)| *s).collect();

    // Every acknowledged sentinel must be readable, linearizably.
    let reader = match client_of(options(Duration::from_secs(10))) {
        Ok(c) => c,
        Err(e) => return Report::inconclusive(mode, objective, e),
    };
    let mut verified = 0;
    let mut missing = Vec::new();
    for seq in &acked {
        let req = pb::GetOrderRequest {
            user_id: user.clone(),
            order_id: format!("s-{seq}"),
            with_history: false,
            read: None,
        };
        let found = reader
            .leader_call(|addr| {
                let req = req.clone();
                let reader = &reader;
                async move {
                    let mut store = reader.store_at(&addr)?;
                    Ok(store.get_order(reader.request(req)).await?.into_inner())
                }
            })
            .await;
        match found {
            Ok((r, _)) if r.order.is_some() => verified += 1,
            _ => missing.push(*seq),
        }
    }

    let mut report = Report {
        mode,
        verdict: Verdict::Pass,
        reason: String::new(),
        old_leader: Some(old_leader),
        new_leader,
        time_to_new_leader,
        write_unavailable,
        objective,
        sentinels_acked: acked.len() as u64,
        sentinels_verified: verified,
    };
    (report.verdict, report.reason) = if !missing.is_empty() {
        (
            Verdict::Fail,
            format!(
                "{} acknowledged sentinel(s) are missing: {missing:?}",
                missing.len()
            ),
        )
    } else if new_leader.is_none() {
        (
            Verdict::Inconclusive,
            "no new leader was seen in time".into(),
        )
    } else {
        match write_unavailable {
            None => (
                Verdict::Inconclusive,
                "no write was acknowledged after the failover".into(),
            ),
            Some(w) if w > objective => (
                Verdict::Fail,
                format!(
                    "writes were unavailable for {} ms, over the objective of {} ms",
                    w.as_millis(),
                    objective.as_millis()
                ),
            ),
            Some(_) => (
                Verdict::Pass,
                "failover within the objective; every acknowledged sentinel is readable".into(),
            ),
        }
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_name_mode_and_verdict_as_the_command_line_does() {
        let r = Report::inconclusive(Mode::Kill, Duration::from_secs(10), "no leader".into());
        assert!(
            r.text()
                .starts_with("drill kill: INCONCLUSIVE: no leader\n"),
            "{}",
            r.text()
        );
        assert_eq!(r.json()["mode"], "kill");
        assert_eq!(r.json()["verdict"], "inconclusive");
    }
}
