//! Failover trials: kill the leader, or hand leadership over, while one writer keeps writing
//! with one request in flight, a 100 ms deadline, and a move to the next node on error (or to
//! the node an answer names as leader).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{wait_healthy, System};

/// The writer's deadline per request.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a trial may wait for a leader or a successful write before it fails.
const GIVE_UP: Duration = Duration::from_secs(30);

/// One kill-leader trial.
#[derive(Debug, Clone, Copy)]
pub struct KillTrial {
    /// From the kill until a surviving node reports a new leader.
    pub new_leader: Duration,
    /// From the kill until the first write sent after it was acknowledged.
    pub unavailable: Duration,
}

/// One planned-transfer trial.
#[derive(Debug, Clone, Copy)]
pub struct TransferTrial {
    /// The longest gap between two acknowledged writes around the transfer.
    pub gap: Duration,
    /// How long the transfer call took.
    pub took: Duration,
}

/// The writer: each success is recorded as (sent, acknowledged).
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(Instant, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start<S: System>(sys: &Arc<S>, first: usize) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, halt, log) = (sys.clone(), stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut node = first;
            let mut seq = 0u64;
            while !halt.load(Ordering::Relaxed) {
                seq += 1;
                let sent = Instant::now();
                match s.write_at(node, seq, WRITE_TIMEOUT).await {
                    Ok(()) => {
                        if let Ok(mut l) = log.lock() {
                            l.push((sent, Instant::now()));
                        }
                    }
                    Err(f) => {
                        node = f.leader_hint.unwrap_or((node + 1) % s.nodes());
                        // A refused connection fails at once: do not spin on a dead node.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
        Writer { stop, acked, task }
    }

    fn acked(&self) -> Vec<(Instant, Instant)> {
        self.acked.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// When the first write sent after `t` was acknowledged (one in flight at `t` may have
    /// been committed before it).
    async fn first_ack_sent_after(&self, t: Instant) -> Result<Instant, String> {
        let deadline = Instant::now() + GIVE_UP;
        loop {
            if let Some((_, a)) = self.acked().into_iter().find(|(s, _)| *s >= t) {
                return Ok(a);
            }
            if Instant::now() > deadline {
                return Err("no write was acknowledged after the fault".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// Kills the leader (SIGKILL) under a writer; measures the time to a new leader and until a
/// write sent after the kill is acknowledged; restarts the killed node and waits for the cluster to be whole.
pub async fn kill_leader<S: System>(sys: &Arc<S>) -> Result<KillTrial, String> {
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    let old = sys.leader().await.ok_or("no leader before the kill")?;
    let writer = Writer::start(sys, old);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    sys.kill(old)?;
    let new_leader = loop {
        match sys.leader().await {
            Some(l) if l != old => break killed_at.elapsed(),
            _ if killed_at.elapsed() > GIVE_UP => {
                writer.stop().await;
                return Err("no new leader".into());
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let back = writer.first_ack_sent_after(killed_at).await;
    writer.stop().await;
    let unavailable = back?.duration_since(killed_at);
    sys.restart(old)?;
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    Ok(KillTrial {
        new_leader,
        unavailable,
    })
}

/// Hands leadership from the leader to the next node under a writer; measures the longest gap
/// between acknowledged writes from just before the call until a second after it returned.
pub async fn transfer_leader<S: System>(sys: &Arc<S>) -> Result<TransferTrial, String> {
    wait_healthy(sys.as_ref(), GIVE_UP).await?;
    let old = sys.leader().await.ok_or("no leader before the transfer")?;
    let to = (old + 1) % sys.nodes();
    let writer = Writer::start(sys, old);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = Instant::now();
    let called = sys.transfer(old, to).await;
    let took = from.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let until = Instant::now();
    let acked: Vec<Instant> = writer.acked().into_iter().map(|(_, a)| a).collect();
    writer.stop().await;
    called?;
    Ok(TransferTrial {
        gap: longest_gap(&acked, from, until),
        took,
    })
}

/// The longest stretch within `[from, until]` without an acknowledgement.
fn longest_gap(acked: &[Instant], from: Instant, until: Instant) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for a in acked.iter().filter(|a| **a > from && **a <= until) {
        gap = gap.max(a.duration_since(last));
        last = *a;
    }
    gap.max(until.duration_since(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_the_edges_of_the_window() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let acked = [ms(5), ms(10), ms(60), ms(70)];
        assert_eq!(longest_gap(&acked, t, ms(80)), Duration::from_millis(50));
        assert_eq!(longest_gap(&acked, t, ms(200)), Duration::from_millis(130));
        assert_eq!(longest_gap(&[], t, ms(30)), Duration::from_millis(30));
    }
}
