//! `qastore ctl drill` against real processes: a kill drill passes and reports what happened;
//! a planned drill moves leadership; a drill on an unhealthy cluster refuses (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qastore_testkit::{ProcCluster, SERIAL};
use std::time::Duration;

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_drill_passes_and_its_report_is_right() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "drill_max_unavailable_ms = 20000")
        .await
        .unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let out = c.ctl(&["drill", "kill", "--output", "json"]).await.unwrap();
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["mode"], "kill");
    assert_eq!(r["old_leader"], leader);
    let new_leader = r["new_leader"].as_u64().unwrap();
    assert_ne!(new_leader, leader);
    // The objective came from the leader's config.
    assert_eq!(r["objective_ms"], 20_000);
    let acked = r["sentinels_acked"].as_u64().unwrap();
    assert!(acked > 0);
    assert_eq!(r["sentinels_verified"].as_u64().unwrap(), acked);
    let to_leader = r["time_to_new_leader_ms"].as_u64().unwrap();
    let outage = r["write_unavailable_ms"].as_u64().unwrap();
    assert!(to_leader > 0 && outage > 0 && outage <= 20_000, "{r}");
    // The old leader's process really ended, as in a crash.
    let status = c
        .reap(leader, Duration::from_secs(5))
        .unwrap()
        .expect("the leader still runs");
    assert!(!status.success());
    // It comes back as a follower of the new leader.
    c.spawn(leader, false).unwrap();
    c.wait_up(leader).await.unwrap();
    let (now, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    assert_eq!(now, new_leader);

    // A planned drill hands leadership over.
    let out = c
        .ctl(&["drill", "planned", "--output", "json"])
        .await
        .unwrap();
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(r["old_leader"], new_leader);
    assert_ne!(r["new_leader"], new_leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_on_an_unhealthy_cluster_is_refused_as_inconclusive() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let down = c.others(leader)[0];
    c.kill(down).unwrap();
    let out = c.ctl(&["drill", "kill", "--output", "json"]).await.unwrap();
    let r = report(&out);
    assert_eq!(out.status.code(), Some(2), "{r}");
    assert_eq!(r["verdict"], "inconclusive");
    assert!(r["reason"].as_str().unwrap().contains("unreachable"), "{r}");
    // Nothing was done: the leader still leads.
    let (still, _) = c.wait_leader(Duration::from_secs(5)).await.unwrap();
    assert_eq!(still, leader);
}
