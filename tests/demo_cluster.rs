//! `qastore demo` with real processes: a second run refuses a directory whose nodes run or
//! whose lock is held and never wipes an earlier demo unasked, `--stop` stops exactly the
//! demo's nodes, a failed `--keep` run leaves its cluster up, `qastore bench` against a
//! kept demo leaves the demo's data as it was, and the demo's live subscriber received every
//! record written, with no gap and no duplicate against the journal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use qastore_client::{Client, ClientConfig};
use qastore_proto::v1 as pb;
use qastore_testkit::signal::{self, Signal};
use qastore_testkit::SERIAL;

/// The `qastore` program cargo built for these tests.
const EXE: &str = env!("CARGO_BIN_EXE_qastore");

/// The demo's instruments (its default eight).
const DEMO_INSTRUMENTS: [&str; 8] = [
    "IF2412", "cu2501", "TA501", "IC2412", "au2502", "m2505", "rb2505", "IH2412",
];

/// Runs `qastore` with `args` off the async runtime.
async fn qastore(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || Command::new(EXE).args(args).output().unwrap())
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value of the demo summary's row `measure` (its last word).
fn summary_value(stdout: &str, measure: &str) -> String {
    stdout
        .lines()
        .find(|l| l.contains(measure))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no {measure:?} in the summary:\n{stdout}"))
        .to_string()
}

/// The pids recorded in a demo directory, by node id.
fn recorded(dir: &Path) -> Vec<(u64, u32)> {
    (1..=3)
        .filter_map(|id| {
            let pid = std::fs::read_to_string(dir.join(format!("node{id}.pid"))).ok()?;
            Some((id, pid.trim().parse().ok()?))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Kills the demo nodes recorded in its directory when dropped, so that a failing test
/// leaves no processes behind.
struct DemoGuard {
    dir: PathBuf,
}

impl Drop for DemoGuard {
    fn drop(&mut self) {
        let dir = self.dir.canonicalize().unwrap_or_else(|_| self.dir.clone());
        let dir = dir.to_string_lossy().into_owned();
        for (_, pid) in recorded(&self.dir) {
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir));
            if ours {
                let _ = signal::kill(pid, Signal::Kill);
            }
        }
    }
}

/// The client API addresses written in the demo's node configs.
fn endpoints(dir: &Path) -> Vec<String> {
    (1..=3)
        .map(|id| {
            let config = std::fs::read_to_string(dir.join(format!("node{id}.toml"))).unwrap();
            config
                .lines()
                .find_map(|l| l.strip_prefix("api_listen = "))
                .unwrap()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

/// A client of the demo: with the operator's certificate the demo made in `dir/certs`, or
/// (`tls` false) with none.
fn client(endpoints: &[String], dir: &Path, tls: bool) -> Client {
    let certs = qastore_security::CertDir::new(dir.join("certs"));
    let admin = certs.client("admin");
    let tls = tls.then(|| {
        qastore_client::ClientTls::from_files(&certs.ca().cert, &admin.cert, &admin.key).unwrap()
    });
    Client::new(
        endpoints,
        ClientConfig {
            client_id: "demo-test".into(),
            call_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(if tls.is_some() { 30 } else { 1 }),
            tls,
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

/// Every tick and every one-minute bar of `instrument`, and the orders of `user`, read on the
/// leader (linearizable).
async fn snapshot(client: &Client, instruments: &[&str], user: &str) -> MarketData {
    let (_, leader) = client.find_leader().await.unwrap();
    let mut store = client.store_at(&leader).unwrap();
    let mut out = MarketData::default();
    for instrument in instruments {
        let mut token = bytes::Bytes::new();
        let mut ticks = Vec::new();
        loop {
            let r = store
                .list_ticks(client.request(pb::ListTicksRequest {
                    instrument_id: instrument.to_string(),
                    limit: 10_000,
                    page_token: token.clone(),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner();
            ticks.extend(r.ticks);
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        let bars = store
            .get_bars(client.request(pb::GetBarsRequest {
                instrument_id: instrument.to_string(),
                source: pb::BarSource::Ticks as i32,
                period: pb::BarPeriod::BarPeriod1m as i32,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .bars;
        out.ticks.push(ticks);
        out.bars.push(bars);
    }
    out.orders = store
        .list_orders(client.request(pb::ListOrdersRequest {
            user_id: user.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .orders;
    out
}

#[derive(Debug, Default, PartialEq)]
struct MarketData {
    ticks: Vec<Vec<pb::Tick>>,
    bars: Vec<Vec<pb::Bar>>,
    orders: Vec<pb::OrderView>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_demo_is_refused_by_a_second_run_untouched_by_bench_and_stopped_exactly() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    let _guard = DemoGuard { dir: dir.clone() };
    let first = qastore(&["demo", "--keep", "--records", "3000", "--dir", d]).await;
    assert!(
        first.status.success(),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let stdout = text(&first.stdout);
    assert!(stdout.contains("qastore demo --stop --dir"));
    // The live subscriber followed the whole run, the leader's kill included: every record
    // the demo wrote reached it, and the journal check found nothing missing or repeated.
    let received: u64 = summary_value(&stdout, "live subscriber: events received")
        .parse()
        .unwrap();
    assert!(received >= 3000, "{received} events received:\n{stdout}");
    assert_eq!(
        summary_value(&stdout, "live subscriber: gaps"),
        "0",
        "{stdout}"
    );
    assert_eq!(
        summary_value(&stdout, "live subscriber: duplicates"),
        "0",
        "{stdout}"
    );
    let pids = recorded(&dir);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.iter().all(|(_, p)| alive(*p)), "{pids:?}");

    // A second run, with or without --fresh, names the running nodes and touches nothing.
    for extra in [&[][..], &["--fresh"][..]] {
        let mut args = vec!["demo", "--records", "100", "--dir", d];
        args.extend_from_slice(extra);
        let again = qastore(&args).await;
        assert_eq!(again.status.code(), Some(1), "{}", text(&again.stdout));
        let err = text(&again.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("in use"), "{err}");
        for (id, pid) in &pids {
            assert!(err.contains(&format!("node {id} pid {pid}")), "{err}");
        }
        assert!(
            pids.iter().all(|(_, p)| alive(*p)),
            "the second run stopped a node"
        );
        assert!(dir.join("node1").is_dir() && dir.join("node1.toml").is_file());
    }

    // The bench writes users and instruments of its own: the demo's are unchanged.
    let endpoints = endpoints(&dir);
    // Secure by default: the demo runs mutual TLS; a client without a certificate gets nowhere.
    let plain = client(&endpoints, &dir, false);
    assert!(plain.find_leader().await.is_err());
    let c = client(&endpoints, &dir, true);
    let before = snapshot(&c, &DEMO_INSTRUMENTS, "u0001").await;
    assert!(
        before.ticks.iter().any(|t| !t.is_empty()),
        "the demo wrote no ticks"
    );
    assert!(
        before.bars.iter().any(|b| !b.is_empty()),
        "the demo has no bars"
    );
    assert!(
        !before.orders.is_empty(),
        "the demo wrote no orders of u0001"
    );
    let certs = dir.join("certs");
    let status = qastore(&[
        "ctl",
        "--endpoints",
        &endpoints.join(","),
        "--cert-dir",
        certs.to_str().unwrap(),
        "status",
        "--output",
        "json",
    ])
    .await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status = text(&status.stdout);
    assert!(status.contains("\"insecure\": false"), "{status}");
    assert!(!status.contains("\"insecure\": true"), "{status}");
    let bench = qastore(&[
        "bench",
        "--endpoints",
        &endpoints.join(","),
        "--cert-dir",
        certs.to_str().unwrap(),
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
        "--writers",
        "2",
        "--readers",
        "1",
    ])
    .await;
    assert!(
        bench.status.success(),
        "{}{}",
        text(&bench.stdout),
        text(&bench.stderr)
    );
    let after = snapshot(&c, &DEMO_INSTRUMENTS, "u0001").await;
    assert!(
        after == before,
        "the bench changed the demo's ticks, bars or orders"
    );
    let bench_data = snapshot(&c, &["IF3412", "cu3501", "TA1501"], "b0001").await;
    assert!(
        bench_data.ticks.iter().any(|t| !t.is_empty()),
        "the bench wrote no ticks of its own instruments"
    );

    // --stop stops exactly the recorded nodes.
    let stop = qastore(&["demo", "--stop", "--dir", d]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let out = text(&stop.stdout);
    for (id, pid) in &pids {
        assert!(out.contains(&format!("node {id} (pid {pid})")), "{out}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|(_, p)| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pids.iter().all(|(_, p)| !alive(*p)),
        "a node outlived --stop"
    );
    assert!(recorded(&dir).is_empty(), "pid files left behind");

    // Stopped, the directory is still an earlier run's: kept unless --fresh is given.
    let again = qastore(&["demo", "--records", "100", "--dir", d]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--fresh"),
        "{}",
        text(&again.stderr)
    );
    assert!(
        dir.join("node1").is_dir(),
        "an earlier demo was wiped unasked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_kept_demo_leaves_its_cluster_up_for_inspection() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    let _guard = DemoGuard { dir: dir.clone() };
    // No records: the read-back finds no orders and the demo fails after the cluster is up.
    let run = qastore(&["demo", "--keep", "--records", "0", "--dir", d]).await;
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stdout));
    assert!(
        text(&run.stderr).contains("no orders"),
        "{}",
        text(&run.stderr)
    );
    assert!(
        text(&run.stdout).contains("left running for inspection"),
        "{}",
        text(&run.stdout)
    );
    let pids = recorded(&dir);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.iter().all(|(_, p)| alive(*p)), "{pids:?}");
    client(&endpoints(&dir), &dir, true)
        .find_leader()
        .await
        .unwrap();
    let stop = qastore(&["demo", "--stop", "--dir", d]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|(_, p)| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pids.iter().all(|(_, p)| !alive(*p)),
        "a node outlived --stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_or_a_foreign_directory_is_refused_and_stop_spares_other_processes() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    // An earlier demo's directory whose write-ahead log some process still holds.
    std::fs::create_dir_all(dir.join("node1/wal")).unwrap();
    std::fs::write(dir.join(".qastore-demo"), b"qastore demo\n").unwrap();
    let lock = File::create(dir.join("node1/wal/LOCK")).unwrap();
    lock.try_lock().unwrap();
    let run = qastore(&["demo", "--fresh", "--records", "100", "--dir", d]).await;
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stdout));
    let err = text(&run.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("LOCK"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    assert!(
        dir.join("node1/wal/LOCK").exists(),
        "a locked directory was wiped"
    );
    drop(lock);

    // A pid file naming a process that is not the demo's node: --stop leaves it alone.
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(dir.join("node2.pid"), format!("{}\n", other.id())).unwrap();
    let stop = qastore(&["demo", "--stop", "--dir", d]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(
        text(&stop.stdout).contains("no longer running"),
        "{}",
        text(&stop.stdout)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        other.try_wait().unwrap().is_none(),
        "--stop signalled another program"
    );
    other.kill().unwrap();
    other.wait().unwrap();

    // A directory that is not a demo's is never wiped, even with --fresh.
    let foreign = tmp.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"keep me").unwrap();
    let run = qastore(&[
        "demo",
        "--fresh",
        "--records",
        "100",
        "--dir",
        foreign.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.status.code(), Some(1));
    assert!(text(&run.stderr).contains("not a demo directory"));
    assert!(foreign.join("notes.txt").exists());
}
