//! A bug planted on purpose must be caught: with the `follower_linearizable_read_is_local`
//! fault point on, followers answer `LINEARIZABLE` reads from their own state without asking
//! the leader. With followers cut off now and then, such reads go stale and the checker must
//! call the run invalid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use qastore_chaos::nemesis::Nemesis;
use qastore_chaos::run::{run, RunConfig, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_answering_linearizable_reads_locally_are_caught() {
    let exe = qastore_testkit::find_qastore().unwrap();
    let bytes = std::fs::read(&exe).unwrap();
    assert!(
        bytes
            .windows(35)
            .any(|w| w == b"follower_linearizable_read_is_local"),
        "{} was built without fault points: run the workspace's tests (cargo test --workspace), which build it with them",
        exe.display()
    );
    for seed in [11, 12] {
        let dir = tempfile::tempdir().unwrap();
        let report = run(RunConfig {
            nodes: 3,
            fault_phase: Duration::from_secs(20),
            quiet: Duration::from_secs(3),
            hold: Duration::from_secs(4),
            nemeses: vec![Nemesis::PartitionRandom, Nemesis::PauseRandom],
            seed,
            clients: 6,
            keys: 20,
            dir: dir.path().to_path_buf(),
            min_ok_per_phase: 20,
            node_env: vec![(
                "FAILPOINTS".into(),
                "follower_linearizable_read_is_local=return".into(),
            )],
            tls: false,
        })
        .await;
        print!("{}", report.summary());
        match report.verdict {
            Verdict::Invalid => {
                assert!(
                    !report.history_check.not_linearizable.is_empty(),
                    "invalid for the wrong reason: {:?}",
                    report.reasons
                );
                return;
            }
            Verdict::Inconclusive => continue,
            Verdict::Valid => panic!("the planted stale reads went unnoticed (seed {seed})"),
        }
    }
    panic!("two runs in a row were inconclusive");
}
