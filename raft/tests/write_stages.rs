//! Every acknowledged write is timed stage by stage: in three nodes over loopback gRPC, each
//! write the leader answers carries its stages, the leader's chain adds up to the whole write,
//! both followers' round trips are counted (the one slower than the quorum too), and the
//! process's histograms count them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use qastore_raft::write_stages::{self, Stage};
use support::{put, Answer, Cluster, SERIAL, WAIT};

fn counted(stage: Stage) -> u64 {
    write_stages::snapshot()
        .into_iter()
        .find(|(s, _)| *s == stage)
        .map_or(0, |(_, h)| h.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_write_answered_by_the_leader_is_timed_stage_by_stage() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::three().await;
    let leader = c.leader().await;
    let (commits, follower_appends) = (counted(Stage::Commit), counted(Stage::FollowerAppend));
    let round_trips = counted(Stage::FollowerRoundTrip);
    for i in 0..20 {
        let out = c.nodes[&leader]
            .write(put(&format!("k{i}"), "v"), false, WAIT)
            .await
            .unwrap();
        assert_eq!(out.response, Answer::Stored(None));
        let s = &out.stages;
        let total = s.get(Stage::Total).expect("the whole write is timed");
        let parts: Vec<Duration> = Stage::CHAIN
            .iter()
            .map(|st| {
                s.get(*st)
                    .unwrap_or_else(|| panic!("{st:?} missing: {s:?}"))
            })
            .collect();
        assert_eq!(
            parts.iter().sum::<Duration>(),
            total,
            "the chain adds up to the whole write: {s:?}"
        );
    }
    assert!(counted(Stage::Commit) >= commits + 20);
    // Both followers' answers are counted, the one slower than the quorum too.
    let deadline = std::time::Instant::now() + WAIT;
    while counted(Stage::FollowerRoundTrip) < round_trips + 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} follower round trips counted, 40 expected",
            counted(Stage::FollowerRoundTrip) - round_trips
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        counted(Stage::FollowerAppend) > follower_appends,
        "the followers timed their appends"
    );
}
