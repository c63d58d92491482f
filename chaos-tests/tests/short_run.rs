//! The short chaos run of the default test suite: three real nodes on mutual TLS (as a
//! cluster should run) behind fault proxies,
//! kill, pause, partition and torn-write nemeses for 45 seconds under a concurrent workload, every check
//! applied. It must be valid; an inconclusive run (the harness could not measure) is retried
//! once with another seed; an invalid run always fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_chaos::nemesis::Nemesis;
use qastore_chaos::run::{run, RunConfig, Verdict};

fn settings(seed: u64, dir: &std::path::Path) -> RunConfig {
    RunConfig {
        nodes: 3,
        fault_phase: Duration::from_secs(45),
        quiet: Duration::from_secs(5),
        hold: Duration::from_secs(5),
        nemeses: vec![
            Nemesis::KillLeader,
            Nemesis::KillRandom,
            Nemesis::PauseLeader,
            Nemesis::PauseRandom,
            Nemesis::PartitionLeader,
            Nemesis::OneWayLeader,
            Nemesis::TornWrite,
        ],
        seed,
        clients: 6,
        keys: 100,
        dir: dir.to_path_buf(),
        min_ok_per_phase: 20,
        node_env: Vec::new(),
        tls: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_with_kills_pauses_and_partitions_is_valid() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_secs());
    for attempt in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(seed + attempt, dir.path());
        println!("chaos seed {}", s.seed);
        let report = run(s).await;
        print!("{}", report.summary());
        match report.verdict {
            Verdict::Valid => return,
            Verdict::Invalid => {
                let keep = dir.keep();
                let path = keep.join("report.json");
                let _ = std::fs::write(
                    &path,
                    serde_json::to_vec_pretty(&report).unwrap_or_default(),
                );
                panic!(
                    "the chaos run is invalid (seed {}); report and logs in {}",
                    report.settings.seed,
                    keep.display()
                );
            }
            Verdict::Inconclusive => continue,
        }
    }
    panic!("two chaos runs in a row were inconclusive");
}
