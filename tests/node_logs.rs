//! A node's log file as `qastore serve` writes it with no RUST_LOG set: no colour codes when
//! the output is not a terminal, no INFO dumps from the Raft library, one JSON object per
//! line with `--log-format json`, and a peer's outage logged as one line per warning and a
//! count, not a line per retry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qastore_proto::v1 as pb;
use qastore_testkit::samples::order;
use qastore_testkit::signal::{self, Signal};
use qastore_testkit::{ProcCluster, SERIAL};
use std::collections::BTreeMap;

/// The `qastore` program cargo built for these tests.
const EXE: &str = env!("CARGO_BIN_EXE_qastore");

/// A node process started by the test, killed when dropped (also when the test fails).
struct Node(Child);

impl Node {
    /// Starts `serve --config config --init` with `extra` flags and no RUST_LOG, its output
    /// appended to `log`.
    fn start(config: &Path, log: &Path, extra: &[&str]) -> Node {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(EXE)
            .args(["serve", "--init", "--config"])
            .arg(config)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Node(child)
    }

    /// SIGTERM, then waits for the process to end.
    fn stop(mut self) {
        signal::kill(self.0.id(), Signal::Term).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the node ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a one-node cluster until it has a leader and applied a write, then stops it; returns
/// its log.
async fn run_node(extra: &[&str]) -> String {
    let c = ProcCluster::prepare(1, "logs", "", 1).unwrap();
    let n = &c.nodes[&1];
    let node = Node::start(&n.config, &n.log, extra);
    c.wait_leader(Duration::from_secs(30)).await.unwrap();
    c.client()
        .unwrap()
        .write(vec![order("u1", "o1")], pb::AckLevel::All)
        .await
        .unwrap();
    node.stop();
    std::fs::read_to_string(&n.log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_have_no_colour_codes_and_no_raft_info_dumps() {
    let _serial = SERIAL.lock().await;
    let log = run_node(&[]).await;
    assert!(
        log.contains("INFO"),
        "our own INFO lines are missing:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
    let dumps: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("openraft"))
        .collect();
    assert!(dumps.is_empty(), "openraft INFO lines: {dumps:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_are_json_objects() {
    let _serial = SERIAL.lock().await;
    let log = run_node(&["--log-format", "json"]).await;
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"].is_object(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outage_does_not_repeat_identical_warnings() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(30)).await.unwrap();
    let follower = c.others(leader)[0];
    let log = c.nodes[&leader].log.clone();
    let before = std::fs::read_to_string(&log).unwrap().len();
    c.kill(follower).unwrap();
    // Heartbeats and replication to the dead follower are retried many times a second; all
    // within one summary window.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text[before..].lines().filter(|l| l.contains(" WARN ")) {
        // Without the timestamp, identical warnings are identical lines.
        let rest = line.split_once(' ').map_or(line, |(_, r)| r);
        *seen.entry(rest).or_default() += 1;
    }
    assert!(!seen.is_empty(), "no warning about the dead follower");
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "identical warnings repeated: {repeated:#?}"
    );
}
