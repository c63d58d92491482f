//! The measurements, the same for every system: fan-out to N live subscribers under the fixed
//! write load, replay of everything retained by one subscriber, and resume trials in which the
//! node a subscriber is on is killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qastore_testkit::{CpuSample, CpuUsage};

use super::pacer::{Pacer, Rate, Written};
use super::tap::{gaps_and_duplicates, Tap};
use super::{wait_healthy, FeedSystem, Start, Subscription};
use crate::Latencies;
use qastore_testkit::processes_cpu_secs;

/// How long a trial waits for the cluster, a first event or a resumed stream before it fails.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Where the CPU went during a measured window, in cores (CPU seconds per second).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    /// The machine: busy and stolen, 0 to 1 of all cores.
    pub machine: CpuUsage,
    /// The cluster's node processes together.
    pub nodes: f64,
    /// This process: the writer and every subscriber.
    pub bench: f64,
}

struct CpuMark {
    machine: CpuSample,
    nodes: f64,
    bench: f64,
    at: Instant,
}

impl CpuMark {
    fn now(pids: &[u32]) -> CpuMark {
        CpuMark {
            machine: CpuSample::now(),
            nodes: processes_cpu_secs(pids),
            bench: processes_cpu_secs(&[std::process::id()]),
            at: Instant::now(),
        }
    }

    fn split(&self, pids: &[u32]) -> CpuSplit {
        let secs = self.at.elapsed().as_secs_f64().max(1e-9);
        CpuSplit {
            machine: CpuSample::now().since(&self.machine),
            nodes: (processes_cpu_secs(pids) - self.nodes) / secs,
            bench: (processes_cpu_secs(&[std::process::id()]) - self.bench) / secs,
        }
    }
}

/// One fan-out row.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Live subscribers.
    pub subscribers: usize,
    /// Records acknowledged per second in the window.
    pub written_per_sec: f64,
    /// Events delivered per second in the window, over all subscribers.
    pub delivered_per_sec: f64,
    /// Send-to-delivery latency of every event delivered in the window.
    pub latency: Latencies,
    /// Where the CPU went.
    pub cpu: CpuSplit,
    /// Write batches that failed, and the first failure.
    pub write_errors: (u64, Option<String>),
}

/// The fan-out row: `subscribers` tail subscribers spread over [`FeedSystem::placement`], the
/// writer at `rate` for `warmup` then `measure`. `seq` is where the writer's numbering goes on.
pub async fn fanout<S: FeedSystem>(
    sys: &Arc<S>,
    subscribers: usize,
    rate: Rate,
    warmup: Duration,
    measure: Duration,
    seq: &mut u64,
) -> Result<Fanout, String> {
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    let nodes = sys.placement().await?;
    let taps: Vec<Arc<Tap>> = (0..subscribers)
        .map(|_| Arc::new(Tap::new(false)))
        .collect();
    let subs: Vec<Subscription> = taps
        .iter()
        .enumerate()
        .map(|(i, tap)| sys.subscribe(nodes[i % nodes.len()], Start::Tail, false, tap.clone()))
        .collect();
    // Let every stream open before the first write, so that none starts after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pacer = Pacer::start(sys.clone(), rate, *seq, false);
    tokio::time::sleep(warmup).await;
    let pids = sys.pids();
    for t in &taps {
        t.reset();
    }
    let acked_before = pacer.acked_records();
    let mark = CpuMark::now(&pids);
    tokio::time::sleep(measure).await;
    let secs = mark.at.elapsed().as_secs_f64();
    let cpu = mark.split(&pids);
    let acked = pacer.acked_records() - acked_before;
    let mut latency = Latencies::new();
    let mut delivered = 0;
    for t in &taps {
        let s = t.snapshot();
        delivered += s.events;
        latency.merge(&s.latency);
    }
    *seq = pacer.next_seq();
    let written: Written = pacer.stop().await;
    drop(subs);
    Ok(Fanout {
        subscribers,
        written_per_sec: acked as f64 / secs,
        delivered_per_sec: delivered as f64 / secs,
        latency,
        cpu,
        write_errors: (written.failed_batches, written.first_error),
    })
}

/// The replay row.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// Events delivered.
    pub events: u64,
    /// From the subscribe call to the last event.
    pub took: Duration,
    /// Where the CPU went, up to the last poll that saw events arrive.
    pub cpu: CpuSplit,
}

impl Replay {
    /// Events per second.
    pub fn per_sec(&self) -> f64 {
        self.events as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// One subscriber on the first node of the placement, from the oldest retained event, with
/// no writes going on: done once nothing more has arrived for `quiet`.
pub async fn replay<S: FeedSystem>(sys: &Arc<S>, quiet: Duration) -> Result<Replay, String> {
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    let node = *sys.placement().await?.first().ok_or("no nodes")?;
    let tap = Arc::new(Tap::new(false));
    let pids = sys.pids();
    let mark = CpuMark::now(&pids);
    let started = Instant::now();
    let sub = sys.subscribe(node, Start::Oldest, false, tap.clone());
    // The CPU split as of the last poll that saw events arrive: the quiet wait after the last
    // event would otherwise dilute it.
    let mut cpu = None;
    let mut seen = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let last = tap.last_at();
        if last != seen {
            seen = last;
            cpu = Some(mark.split(&pids));
        }
        match last {
            Some(last) if last.elapsed() >= quiet => break,
            None if started.elapsed() > GIVE_UP => {
                return Err("no event arrived".into());
            }
            _ => {}
        }
    }
    drop(sub);
    let last = tap.last_at().ok_or("no event arrived")?;
    let cpu = cpu.unwrap_or_else(|| mark.split(&pids));
    Ok(Replay {
        events: tap.snapshot().events,
        took: last.duration_since(started),
        cpu,
    })
}

/// One resume trial.
#[derive(Debug, Clone, Copy)]
pub struct ResumeTrial {
    /// From the kill until the subscriber delivered an event written after it.
    pub resumed: Duration,
    /// Acknowledged events written while the subscriber was live that it never delivered.
    pub gaps: u64,
    /// Events it delivered more than once.
    pub duplicates: u64,
}

/// A resuming tail subscriber on a follower (trial `n` picks the follower) under the writer
/// at `rate`; the follower is killed; measures the time until an event written after the kill
/// arrives, then counts gaps and duplicates over every acknowledged write sent after the first
/// event arrived; restarts the node.
pub async fn resume_trial<S: FeedSystem>(
    sys: &Arc<S>,
    n: usize,
    rate: Rate,
    seq: &mut u64,
) -> Result<ResumeTrial, String> {
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    let nodes = sys.placement().await?;
    let followers = &nodes[..nodes.len().saturating_sub(1).max(1)];
    let node = followers[n % followers.len()];
    let tap = Arc::new(Tap::new(true));
    let sub = sys.subscribe(node, Start::Tail, true, tap.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pacer = Pacer::start(sys.clone(), rate, *seq, true);
    let mut killed = false;
    let outcome = kill_under(sys, node, &tap, &pacer, &mut killed).await;
    *seq = pacer.next_seq();
    let written = pacer.stop().await;
    let restarted = if killed { sys.restart(node) } else { Ok(()) };
    let (floor, resumed) = match outcome {
        Ok(v) => v,
        Err(e) => {
            drop(sub);
            restarted?;
            wait_healthy(sys.as_ref(), GIVE_UP).await?;
            return Err(e);
        }
    };
    let mut required: Vec<u64> = written.acked.into_iter().filter(|s| *s >= floor).collect();
    required.sort_unstable();
    // Let the subscriber drain what was acknowledged last.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut gaps, mut duplicates) = gaps_and_duplicates(&tap.seqs(), &required);
    while gaps > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (gaps, duplicates) = gaps_and_duplicates(&tap.seqs(), &required);
    }
    drop(sub);
    restarted?;
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    Ok(ResumeTrial {
        resumed,
        gaps,
        duplicates,
    })
}

/// Waits for the subscriber's first event, kills `node` (setting `killed`) and waits for an
/// event written after the kill. Answers the first sequence number the subscriber must have
/// delivered, and the time to resume.
async fn kill_under<S: FeedSystem>(
    sys: &Arc<S>,
    node: usize,
    tap: &Tap,
    pacer: &Pacer,
    killed: &mut bool,
) -> Result<(u64, Duration), String> {
    let waiting = Instant::now();
    while tap.first_at().is_none() {
        if waiting.elapsed() > GIVE_UP {
            return Err("the subscriber received nothing before the kill".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let floor = pacer.next_seq();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tap.mark(pacer.next_seq());
    let killed_at = Instant::now();
    sys.kill(node)?;
    *killed = true;
    loop {
        if let Some(at) = tap.marked_at() {
            // Keep writing a little after the resume, so that the check covers it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok((floor, at.duration_since(killed_at)));
        }
        if killed_at.elapsed() > GIVE_UP {
            return Err("the subscriber did not resume".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
