//! The Python subscriber of `examples/python`, run on code generated from the `.proto` files
//! alone, against a real three-node cluster: from the oldest event it prints exactly the
//! committed events (positions in order, kinds, ids), and when the node it reads from is
//! killed it goes on at the next endpoint with no gap and no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod python;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use qastore_client::{Client, ClientConfig};
use qastore_proto::v1 as pb;
use qastore_testkit::samples;
use qastore_testkit::{ProcCluster, SERIAL};
use serde_json::Value;

/// How long the script may take to print what the test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// Batch `b`: one sample record of every kind, with ids of its own.
fn batch(b: u64) -> Vec<pb::Record> {
    let user = format!("u{}", b % 3);
    let instrument = if b.is_multiple_of(2) {
        "IF2412"
    } else {
        "IF2501"
    };
    let mut records = samples::records();
    for r in &mut records {
        match r.kind.as_mut().unwrap() {
            pb::record::Kind::OrderInsert(o) => {
                o.user_id = user.clone();
                o.order_id = format!("o-{b}");
                o.instrument_id = instrument.into();
            }
            pb::record::Kind::OrderUpdate(u) => {
                u.user_id = user.clone();
                u.order_id = format!("o-{b}");
            }
            pb::record::Kind::TradeExecuted(t) => {
                t.user_id = user.clone();
                t.order_id = format!("o-{b}");
                t.trade_id = format!("t-{b}");
                t.instrument_id = instrument.into();
            }
            pb::record::Kind::AccountUpdate(a) => a.user_id = user.clone(),
            pb::record::Kind::PositionUpdate(p) => {
                p.user_id = user.clone();
                p.instrument_id = instrument.into();
            }
            pb::record::Kind::Tick(t) => {
                t.instrument_id = instrument.into();
                t.sequence = b;
            }
            pb::record::Kind::OrderBookSnapshot(k) => {
                k.instrument_id = instrument.into();
                k.datetime += b as i64;
            }
        }
    }
    records
}

/// An event as the test compares it: position, kind (the record's oneof field) and ids.
type Seen = (String, String, String);

/// The fields that tell one record from another; each kind has some of them.
const ID_FIELDS: &[&str] = &[
    "user_id",
    "order_id",
    "trade_id",
    "instrument_id",
    "sequence",
    "datetime",
];

/// The ids of a record written as JSON (protobuf's JSON writes 64-bit integers as strings,
/// serde as numbers: both read the same here).
fn ids(record: &Value) -> String {
    ID_FIELDS
        .iter()
        .filter_map(|f| record.get(*f))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes batches `range` (ack `ack`) and appends what each committed as the events the feed
/// must carry: batch at log index i, record k at position `i:k`.
async fn write(client: &Client, range: std::ops::Range<u64>, ack: pb::AckLevel) -> Vec<Seen> {
    let mut expected = Vec::new();
    for b in range {
        let records = batch(b);
        let w = client.write(records.clone(), ack).await.unwrap();
        for (k, r) in records.iter().enumerate() {
            let json = serde_json::to_value(r.kind.as_ref().unwrap()).unwrap();
            let (kind, fields) = json.as_object().unwrap().iter().next().unwrap();
            expected.push((format!("{}:{k}", w.log_index), kind.clone(), ids(fields)));
        }
    }
    expected
}

/// What one JSON line of the script says.
fn parse(line: &str) -> Seen {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let commit = v["commit_time_ns"].as_i64().unwrap_or(0);
    assert!(commit > 0, "no commit time: {line}");
    (
        v["position"].as_str().unwrap().to_string(),
        v["kind"].as_str().unwrap().to_string(),
        ids(&v["record"]),
    )
}

/// `subscribe.py` running, its stdout read line by line.
struct Script {
    child: Child,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Script {
    fn start(python: &Path, generated: &Path, args: &[String]) -> Script {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/subscribe.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .env("PYTHONPATH", generated)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // No line is read ahead: a test that stops reading holds the script's printing back
        // once the pipe is full, as a slow consumer would.
        let (tx, lines) = mpsc::sync_channel(0);
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let (tx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        Script {
            child,
            lines,
            stderr,
        }
    }

    /// The next `n` lines, failing if they do not come within [`WAIT`].
    fn read(&mut self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::with_capacity(n);
        while seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(parse(&line)),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "{} of {n} lines came; stderr:\n{}",
                        seen.len(),
                        self.stderr.recv().unwrap_or_default()
                    );
                }
            }
        }
        seen
    }

    /// Waits for the script to end by itself and answers its stderr; it must exit cleanly
    /// and have printed nothing more.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the script did not end after its last event");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self.stderr.recv_timeout(WAIT).unwrap();
        assert!(status.success(), "{status}; stderr:\n{stderr}");
        let extra: Vec<String> = self.lines.try_iter().collect();
        assert!(extra.is_empty(), "printed past its limit: {extra:?}");
        stderr
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pinned venv's python and a folder holding the code generated from every `.proto` file.
fn generated() -> (PathBuf, tempfile::TempDir) {
    let py = python::python();
    let out = tempfile::tempdir().unwrap();
    python::generate(&py, &python::proto_files(), out.path());
    (py, out)
}

fn args(endpoints: &[String], limit: usize) -> Vec<String> {
    let mut args = Vec::new();
    for e in endpoints {
        args.extend(["--endpoint".to_string(), e.clone()]);
    }
    args.extend(["--from", "oldest", "--limit"].map(String::from));
    args.push(limit.to_string());
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_subscriber_on_a_follower_prints_every_committed_event_from_the_oldest_filtered_or_not(
) {
    let (py, gen) = generated();
    let _serial = SERIAL.lock().await;
    // The generated Python stubs dial plain gRPC.
    let c = ProcCluster::start_insecure(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let client = c.client().unwrap();
    let expected = write(&client, 0..8, pb::AckLevel::All).await;

    let follower = c.others(leader)[0];
    let mut script = Script::start(&py, gen.path(), &args(&[c.api(follower)], expected.len()));
    let seen = script.read(expected.len());
    assert_eq!(seen, expected);
    script.finish();

    // The node filters: ticks and trades of one instrument.
    let wanted: Vec<Seen> = expected
        .into_iter()
        .filter(|(_, kind, ids)| {
            ["tick", "trade_executed"].contains(&kind.as_str()) && ids.contains("IF2412")
        })
        .collect();
    assert_eq!(wanted.len(), 8, "a tick and a trade in each even batch");
    let mut filtered = args(&[c.api(follower)], wanted.len());
    filtered.extend(["--kinds", "ticks,trades", "--instruments", "IF2412"].map(String::from));
    let mut script = Script::start(&py, gen.path(), &filtered);
    assert_eq!(script.read(wanted.len()), wanted);
    script.finish();
}

/// What happens to the node the script reads from.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL: its connections are reset at once.
    Kill,
    /// SIGSTOP: its connections stay open and silent.
    Freeze,
}

/// Streams 280 events from the oldest with two followers as endpoints: from the journal, then
/// live from the first follower, which then suffers `fault`, then from the second one only.
/// Answers the script's stderr.
async fn fail_over(fault: Fault) -> String {
    let (py, gen) = generated();
    // The generated Python stubs dial plain gRPC.
    let mut c = ProcCluster::start_insecure(3, "").await.unwrap();
    let (leader, leader_api) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    // Writes go straight to the leader, never through the follower at fault.
    let client = Client::new(&[leader_api], ClientConfig::default()).unwrap();
    let mut expected = write(&client, 0..20, pb::AckLevel::All).await;
    let total = expected.len() + 20 * batch(0).len();
    let f = c.others(leader);
    let endpoints = [c.api(f[0]), c.api(f[1])];
    let mut script = Script::start(&py, gen.path(), &args(&endpoints, total));
    let mut seen = script.read(1);
    expected.extend(write(&client, 20..30, pb::AckLevel::Quorum).await);
    match fault {
        Fault::Kill => c.kill(f[0]).unwrap(),
        Fault::Freeze => c.pause(f[0], true).unwrap(),
    }
    expected.extend(write(&client, 30..40, pb::AckLevel::Quorum).await);
    assert_eq!(expected.len(), total);
    seen.extend(script.read(total - 1));
    assert_eq!(seen, expected);
    let stderr = script.finish();
    let resumed = format!("resuming on {} --from ", endpoints[1]);
    assert!(stderr.contains(&resumed), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_subscriber_whose_node_is_killed_goes_on_at_the_next_endpoint_without_gap_or_duplicate(
) {
    let _serial = SERIAL.lock().await;
    fail_over(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_subscriber_whose_node_freezes_gives_up_on_its_silence_and_goes_on_without_gap_or_duplicate(
) {
    let _serial = SERIAL.lock().await;
    let stderr = fail_over(Fault::Freeze).await;
    assert!(stderr.contains("nothing received for"), "{stderr}");
}
