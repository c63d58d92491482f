//! Nemeses: the faults a run injects, each installed, held, and healed, with a record of what
//! happened (installed, skipped, or indeterminate) and, for faults that take the leader away,
//! how long until a new leader was confirmed.

use std::time::{Duration, Instant};

use qastore_client::Client;
use rand::rngs::SmallRng;
use rand::Rng;
use serde::Serialize;

use crate::cluster::ChaosCluster;
use crate::history::Nanos;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Nemesis {
    /// SIGKILL the leader, then restart it.
    KillLeader,
    /// SIGKILL a random node, then restart it.
    KillRandom,
    /// SIGSTOP the leader, then SIGCONT it (a paused old leader must acknowledge nothing).
    PauseLeader,
    /// SIGSTOP a random node, then SIGCONT it.
    PauseRandom,
    /// Cut the leader off from everyone, both ways (it is the minority).
    PartitionLeader,
    /// Cut a random node off from everyone, both ways.
    PartitionRandom,
    /// The leader cannot reach anyone, but everyone can reach it.
    OneWayLeader,
    /// Every link delayed by 50 ms.
    SlowLinks,
    /// Hand leadership to a random follower under load.
    TransferLeader,
    /// SIGKILL a random follower, append a partial record to its write-ahead log (a write torn
    /// by the crash, never fsynced, never acknowledged), restart it.
    TornWrite,
    /// Wipe a random follower, remove it, and add a node with a new id in its place (it catches
    /// up through a snapshot), then promote it: a membership change under load.
    Replace,
}

impl Nemesis {
    /// Parses a name as the command line gives it.
    pub fn parse(name: &str) -> Option<Nemesis> {
        Some(match name {
            "kill-leader" => Nemesis::KillLeader,
            "kill" | "kill-random" => Nemesis::KillRandom,
            "pause-leader" => Nemesis::PauseLeader,
            "pause" | "pause-random" => Nemesis::PauseRandom,
            "partition" | "partition-leader" => Nemesis::PartitionLeader,
            "partition-random" => Nemesis::PartitionRandom,
            "one-way" | "one-way-leader" => Nemesis::OneWayLeader,
            "slow" | "slow-links" => Nemesis::SlowLinks,
            "transfer" | "transfer-leader" => Nemesis::TransferLeader,
            "torn-write" => Nemesis::TornWrite,
            "replace" => Nemesis::Replace,
            _ => return None,
        })
    }

    /// Whether it takes leadership away.
    pub fn affects_leader(self) -> bool {
        matches!(
            self,
            Nemesis::KillLeader
                | Nemesis::PauseLeader
                | Nemesis::PartitionLeader
                | Nemesis::OneWayLeader
                | Nemesis::TransferLeader
        )
    }
}

/// How a fault went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FaultStatus {
    /// Installed and healed.
    Installed,
    /// Not installed (why).
    Skipped(String),
    /// Something went wrong installing or healing it (why): the run is inconclusive.
    Indeterminate(String),
}

/// One fault of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// What.
    pub nemesis: Nemesis,
    /// The node it hit.
    pub target: Option<u64>,
    /// The leader before it.
    pub leader_before: Option<u64>,
    /// When it was installed (ns since the start).
    pub installed_at: Nanos,
    /// When it was healed.
    pub healed_at: Nanos,
    /// The new leader, for faults that take leadership away.
    pub new_leader: Option<u64>,
    /// From install to a new leader being confirmed.
    pub time_to_new_leader_ms: Option<u64>,
    /// How it went.
    pub status: FaultStatus,
}

/// Installs `nemesis`, holds it for `hold`, heals it. `now` reads the run's clock.
pub(crate) async fn inject(
    cluster: &mut ChaosCluster,
    client: &Client,
    nemesis: Nemesis,
    hold: Duration,
    rng: &mut SmallRng,
    now: impl Fn() -> Nanos,
) -> Fault {
    let leader = cluster.leader(client).await;
    let mut fault = Fault {
        nemesis,
        target: None,
        leader_before: leader,
        installed_at: now(),
        healed_at: 0,
        new_leader: None,
        time_to_new_leader_ms: None,
        status: FaultStatus::Installed,
    };
    let ids: Vec<u64> = cluster.ids();
    let random = ids[rng.random_range(0..ids.len())];
    let followers: Vec<u64> = ids.iter().copied().filter(|i| Some(*i) != leader).collect();
    let target = match (nemesis, leader) {
        (_, None) if nemesis.affects_leader() => {
            fault.status = FaultStatus::Skipped("no confirmed leader".into());
            return fault;
        }
        (Nemesis::TornWrite | Nemesis::Replace, _) if followers.is_empty() => {
            fault.status = FaultStatus::Skipped("no follower".into());
            return fault;
        }
        (Nemesis::TornWrite | Nemesis::Replace, _) => {
            followers[rng.random_range(0..followers.len())]
        }
        (_, Some(l)) if nemesis.affects_leader() => l,
        _ => random,
    };
    fault.target = Some(target);
    let installed = Instant::now();
    fault.installed_at = now();
    let result = match nemesis {
        Nemesis::KillLeader | Nemesis::KillRandom => cluster.kill(target),
        Nemesis::PauseLeader | Nemesis::PauseRandom => cluster.pause(target, true),
        Nemesis::PartitionLeader | Nemesis::PartitionRandom => {
            cluster.isolate(target);
            Ok(())
        }
        Nemesis::OneWayLeader => {
            for other in ids.iter().filter(|i| **i != target) {
                cluster.one_way(target, *other);
            }
            Ok(())
        }
        Nemesis::SlowLinks => {
            cluster.slow(Duration::from_millis(50));
            Ok(())
        }
        Nemesis::TransferLeader => {
            // Leadership may move on its own meanwhile: ask whoever leads now, a few times.
            let mut result = Err(crate::HarnessError("no leader to transfer from".into()));
            for _ in 0..3 {
                let Some(from) = cluster.leader(client).await else {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                };
                let others: Vec<u64> = ids.iter().copied().filter(|i| *i != from).collect();
                let to = others[rng.random_range(0..others.len())];
                fault.target = Some(from);
                fault.leader_before = Some(from);
                result = cluster.transfer_leader(client, from, to).await;
                if result.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            result
        }
        Nemesis::TornWrite => cluster
            .kill(target)
            .and_then(|()| cluster.tear_wal_tail(target, rng.random_range(1..48))),
        Nemesis::Replace => match cluster.replace(client, target).await {
            Ok(new) => {
                tracing::info!(old = target, new, "node replaced");
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        fault.status = FaultStatus::Indeterminate(format!("installing: {e}"));
        return fault;
    }
    // Hold, watching for a new leader among the others.
    let until = installed + hold;
    while Instant::now() < until {
        if nemesis.affects_leader() && fault.new_leader.is_none() {
            if let Some(l) = cluster.leader(client).await.filter(|l| *l != target) {
                fault.new_leader = Some(l);
                fault.time_to_new_leader_ms = Some(installed.elapsed().as_millis() as u64);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let healed = match nemesis {
        Nemesis::KillLeader | Nemesis::KillRandom | Nemesis::TornWrite => {
            cluster.spawn(target, false)
        }
        Nemesis::TransferLeader | Nemesis::Replace => Ok(()),
        Nemesis::PauseLeader | Nemesis::PauseRandom => cluster.pause(target, false),
        Nemesis::PartitionLeader
        | Nemesis::PartitionRandom
        | Nemesis::OneWayLeader
        | Nemesis::SlowLinks => {
            cluster.heal_links();
            Ok(())
        }
    };
    fault.healed_at = now();
    if let Err(e) = healed {
        fault.status = FaultStatus::Indeterminate(format!("healing: {e}"));
    }
    fault
}
