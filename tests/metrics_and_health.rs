//! The `/metrics` page and `/readyz` of real `qastore serve` processes: the page passes
//! `promtool check metrics` on the leader and on a follower, lists every metric from the start,
//! types running totals as counters and keeps each family's lines together; and the
//! `qastore_raft_has_leader` gauge says what `/readyz` says on a node cut off from its leader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qastore_proto::v1 as pb;
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};

/// Runs `promtool check metrics` on `page`; `None` when promtool is not installed.
fn promtool_check(page: &str) -> Option<std::process::Output> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

/// The family a sample line belongs to, given the histogram families.
fn family<'a>(sample: &'a str, histograms: &BTreeSet<String>) -> &'a str {
    let name = sample.split(['{', ' ']).next().unwrap_or(sample);
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if histograms.contains(base) {
                return base;
            }
        }
    }
    name
}

/// Checks that every family has HELP and TYPE lines and that all its lines form one block;
/// returns each family's type.
fn families(page: &str) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    let mut helped = BTreeSet::new();
    for line in page.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("TYPE"), Some(name)) => {
                let kind = words.next().unwrap_or("").to_string();
                assert!(
                    types.insert(name.to_string(), kind).is_none(),
                    "two TYPE lines for {name}"
                );
            }
            (Some("#"), Some("HELP"), Some(name)) => {
                helped.insert(name.to_string());
            }
            _ => {}
        }
    }
    let histograms: BTreeSet<String> = types
        .iter()
        .filter(|(_, k)| *k == "histogram")
        .map(|(n, _)| n.clone())
        .collect();
    let mut current: Option<String> = None;
    let mut done = BTreeSet::new();
    for line in page.lines().filter(|l| !l.trim().is_empty()) {
        let name = match line.strip_prefix("# ") {
            Some(rest) => rest.split_whitespace().nth(1).unwrap_or("").to_string(),
            None => family(line, &histograms).to_string(),
        };
        if current.as_deref() != Some(name.as_str()) {
            if let Some(prev) = current.take() {
                done.insert(prev);
            }
            assert!(
                !done.contains(&name),
                "the lines of {name} are not together:\n{page}"
            );
            current = Some(name);
        }
    }
    for name in types.keys() {
        assert!(helped.contains(name), "{name} has no HELP line:\n{page}");
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_page_passes_promtool_on_the_leader_and_a_follower() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = c.others(leader)[0];

    // Every metric is there from the start, also on a node that never took a write.
    let (code, page) = c.http_get(follower, "/metrics").unwrap();
    assert_eq!(code, 200);
    for line in [
        "qastore_writes_total 0",
        "qastore_records_written_total 0",
        "qastore_proposals_failed_total 0",
        "qastore_writes_forwarded_total 0",
        "qastore_wal_fsync_seconds_count",
    ] {
        assert!(
            page.contains(line),
            "node {follower} lacks {line:?}:\n{page}"
        );
    }

    // Some traffic: writes through the leader and one forwarded by the follower.
    let client = c.client().unwrap();
    for i in 0..5 {
        client
            .write(vec![order("u1", &format!("o{i}"))], pb::AckLevel::All)
            .await
            .unwrap();
    }
    let mut store = client.store_at(&c.api(follower)).unwrap();
    store
        .write(client.request(pb::WriteRequest {
            client_id: "gw".into(),
            request_id: 1,
            records: vec![order("u2", "o1")],
            ack: pb::AckLevel::All as i32,
        }))
        .await
        .unwrap();
    // Let the sampler take a round after the writes.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    for id in [leader, follower] {
        let (code, page) = c.http_get(id, "/metrics").unwrap();
        assert_eq!(code, 200);
        let types = families(&page);
        for (name, kind) in [
            ("qastore_flushes_total", "counter"),
            ("qastore_compactions_total", "counter"),
            ("qastore_wal_fsyncs_total", "counter"),
            ("qastore_wal_bytes_total", "counter"),
            ("qastore_wal_entries_total", "counter"),
            ("qastore_write_stalls_total", "counter"),
            ("qastore_write_stall_seconds_total", "counter"),
            ("qastore_writes_total", "counter"),
            ("qastore_raft_has_leader", "gauge"),
            ("qastore_wal_fsync_seconds", "histogram"),
            ("qastore_rpc_seconds", "histogram"),
            ("qastore_write_stage_seconds", "histogram"),
        ] {
            assert_eq!(
                types.get(name).map(String::as_str),
                Some(kind),
                "node {id}: {name}:\n{page}"
            );
        }
        for (name, kind) in &types {
            if name.ends_with("_total") {
                assert_eq!(kind, "counter", "node {id}: {name} is a total");
            }
        }
        match promtool_check(&page) {
            Some(out) => assert!(
                out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                "promtool check metrics fails on node {id}: {}{}\n{page}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            None if std::env::var_os("CI").is_some() => {
                panic!("promtool is missing; CI installs it (Debian's prometheus package)")
            }
            None => println!(
                "skipping the promtool check: promtool is not installed (apt-get install \
                 prometheus); the page's own checks passed"
            ),
        }
    }
    // The leader took all six writes; the follower forwarded at least the one sent to it.
    let value = |page: &str, name: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}:\n{page}"))
    };
    let (_, page) = c.http_get(leader, "/metrics").unwrap();
    assert_eq!(value(&page, "qastore_writes_total"), 6.0, "{page}");
    assert_eq!(
        value(&page, "qastore_write_stage_seconds_count{stage=\"total\"}"),
        6.0,
        "the leader timed each write it answered:\n{page}"
    );
    let (_, page) = c.http_get(follower, "/metrics").unwrap();
    assert!(
        value(&page, "qastore_writes_forwarded_total") >= 1.0,
        "{page}"
    );
    for stage in ["forward", "follower_append"] {
        let name = format!("qastore_write_stage_seconds_count{{stage=\"{stage}\"}}");
        assert!(value(&page, &name) >= 1.0, "{name}:\n{page}");
    }
    // The same histograms through the admin API, summed over the nodes.
    let stages = client.write_stages().await.unwrap().summaries();
    let count = |name: &str| {
        stages
            .iter()
            .find(|s| s.stage == name)
            .map_or(0, |s| s.count)
    };
    assert_eq!(count("total"), 6, "{stages:?}");
    assert!(count("follower_round_trip") >= 6, "{stages:?}");
}

/// `/readyz` and the `qastore_raft_has_leader` gauge of node `id`, read together.
fn health(c: &ProcCluster, id: u64) -> (bool, Option<bool>, String) {
    let (code, body) = c.http_get(id, "/readyz").unwrap();
    let (_, page) = c.http_get(id, "/metrics").unwrap();
    let gauge = page
        .lines()
        .find_map(|l| l.strip_prefix("qastore_raft_has_leader "))
        .map(|v| v.trim() == "1");
    (code == 200, gauge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_leader_and_readyz_agree_on_a_node_cut_off_from_its_leader() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    c.client()
        .unwrap()
        .write(vec![order("u1", "o1")], pb::AckLevel::All)
        .await
        .unwrap();
    let others = c.others(leader);
    let (frozen, lonely) = (others[0], others[1]);
    let started = Instant::now();
    loop {
        let (ready, gauge, body) = health(&c, lonely);
        if ready && gauge == Some(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a healthy follower: ready {ready} ({body}), has_leader {gauge:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The leader and the other follower stop: this node hears from no leader.
    c.pause(leader, true).unwrap();
    c.pause(frozen, true).unwrap();
    let started = Instant::now();
    let body = loop {
        let (ready, gauge, body) = health(&c, lonely);
        if !ready && gauge == Some(false) {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node {lonely} cut off for {:?}: ready {ready} ({body}), has_leader {gauge:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body.contains("leader"),
        "/readyz gives the leader as the reason: {body}"
    );
    // And they keep agreeing while it stays cut off.
    for _ in 0..5 {
        let (ready, gauge, body) = health(&c, lonely);
        assert_eq!(Some(ready), gauge, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    c.pause(leader, false).unwrap();
    c.pause(frozen, false).unwrap();
    let started = Instant::now();
    loop {
        let (ready, gauge, body) = health(&c, lonely);
        if ready && gauge == Some(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "back with a leader: ready {ready} ({body}), has_leader {gauge:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
