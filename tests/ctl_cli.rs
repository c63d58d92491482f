//! `qastore ctl` as people and scripts use it, against real nodes: paged bars, times in
//! RFC 3339, the same answer for an unknown instrument from ticks and bars, the order counts
//! of `orders` and `order`, a closed pipe, `status` from a follower and with a member down,
//! transfer to the node that already leads, a short bench, and errors that name the address.
//! Without a cluster: the help texts and shell completions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use qastore_proto::v1 as pb;
use qastore_testkit::samples::order;
use qastore_testkit::workload::Workload;
use qastore_testkit::{ProcCluster, SERIAL};
use serde_json::Value;

/// The `qastore` program cargo built for these tests.
const EXE: &str = env!("CARGO_BIN_EXE_qastore");

fn run(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// An address where nothing listens.
fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn update(user: &str, order: &str, left: i64, time: i64) -> pb::Record {
    pb::Record {
        kind: Some(pb::record::Kind::OrderUpdate(pb::OrderUpdate {
            user_id: user.into(),
            order_id: order.into(),
            status: pb::OrderStatus::Alive as i32,
            volume_left: left,
            last_msg: "partly filled".into(),
            time,
        })),
    }
}

/// The help line of `flag` in `help`, with its description.
fn described(help: &str, flag: &str) -> bool {
    let mut lines = help.lines();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if t.starts_with(&format!("{flag} ")) || t.starts_with(&format!("{flag}=")) || t == flag {
            // The description follows on the same line or on the next.
            let rest = t.split_once("  ").map_or("", |(_, r)| r.trim());
            let next = lines.next().unwrap_or("").trim();
            return !rest.is_empty() || (!next.is_empty() && !next.starts_with('-'));
        }
    }
    panic!("no {flag} in\n{help}")
}

#[test]
fn help_describes_every_option_and_offers_examples_and_completions() {
    for (cmd, flags) in [
        (&["ctl", "order"][..], &["--user", "--order"][..]),
        (&["ctl", "orders"], &["--user"]),
        (&["ctl", "ticks"], &["--instrument", "--from", "--to"]),
        (&["ctl", "trades"], &["--instrument", "--user"]),
        (
            &["ctl", "bars"],
            &["--instrument", "--limit", "--page-token"],
        ),
        (&["ctl", "add-learner"], &["--id", "--raft", "--api"]),
        (&["ctl", "promote"], &["--id"]),
        (&["ctl", "remove"], &["--id"]),
        (&["ctl", "transfer-leader"], &["--to"]),
        (&["ctl", "compact"], &["--node"]),
        (&["ctl", "backup"], &["--node"]),
        (
            &["ctl", "subscribe"],
            &[
                "--kinds",
                "--instruments",
                "--prefixes",
                "--users",
                "--exchange",
                "--from",
                "--mode",
                "--window-ms",
                "--heartbeat-ms",
                "--consumer",
                "--ack-every",
                "--limit",
                "--show-progress",
            ],
        ),
        (&["ctl", "consumers", "list"], &[]),
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = stdout(&run(&args));
        for f in flags {
            assert!(
                described(&help, f),
                "{cmd:?} {f} has no description:\n{help}"
            );
        }
        assert!(
            !help.contains("IF2412"),
            "{cmd:?} uses an instrument the demo lacks"
        );
        assert!(!help.contains("-9223372036854775808"), "{help}");
    }
    let restore = stdout(&run(&["ctl", "restore", "--help"]));
    assert!(!restore.contains("--endpoints"), "{restore}");
    let hash = stdout(&run(&["ctl", "hash", "--help"]));
    assert!(hash.contains("hash mark"), "{hash}");
    let top = stdout(&run(&["--help"]));
    assert!(top.contains("Examples:"), "{top}");
    assert!(top.contains("completions"), "{top}");
    let ctl = stdout(&run(&["ctl", "--help"]));
    assert!(ctl.contains("-w"), "etcdctl's -w: {ctl}");

    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", stderr(&bash));
    let script = stdout(&bash);
    assert!(script.contains("_qastore") && script.contains("transfer-leader"));

    // A bad time says what it accepts.
    let bad = run(&["ctl", "ticks", "--instrument", "cu2501", "--from", "monday"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}

#[test]
fn errors_reaching_a_node_name_its_address() {
    let dead = dead_addr();
    let o = run(&["ctl", "--endpoints", &dead, "status"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&dead), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // http:// endpoints and -w are taken as etcdctl users write them.
    let o = run(&[
        "ctl",
        "--endpoints",
        &format!("http://{dead}"),
        "-w",
        "json",
        "members",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));
    let o = run(&[
        "ctl",
        "--endpoints",
        &dead,
        "orders",
        "--user",
        "u0001",
        "--node",
        &format!("http://{dead}/"),
    ]);
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_pages_bars_prints_times_and_reports_members_truthfully() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::start(3, "").await.unwrap();
    let (leader, _) = c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let client = c.client().unwrap();
    // Market data: cu2501's night session, about half an hour of ticks.
    let mut w = Workload::new(7, 2, 3);
    for _ in 0..8 {
        let batch: Vec<pb::Record> = (0..500).map(|_| w.next_pb()).collect();
        client.write(batch, pb::AckLevel::All).await.unwrap();
    }
    let t0 = 1_733_450_000_000_000_000;
    let last = client
        .write(
            vec![
                order("k1", "o1"),
                update("k1", "o1", 1, t0 + 1),
                update("k1", "o1", 0, t0 + 2),
            ],
            pb::AckLevel::All,
        )
        .await
        .unwrap();
    let at = last.log_index.to_string();

    // Bars come a page at a time, and the pages join up to the whole.
    let bars = ["bars", "--instrument", "cu2501", "--min-applied-index", &at];
    let all = json(
        &c.ctl(&[&bars[..], &["-o", "json", "--limit", "1000"]].concat())
            .await
            .unwrap(),
    );
    let all = all["bars"].as_array().unwrap().clone();
    assert!(all.len() >= 3, "{} bars", all.len());
    let first = json(
        &c.ctl(&[&bars[..], &["-o", "json", "--limit", "1"]].concat())
            .await
            .unwrap(),
    );
    assert_eq!(first["bars"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["bars"][0], all[0]);
    let token = first["next_page_token"].as_str().unwrap().to_string();
    let second = json(
        &c.ctl(
            &[
                &bars[..],
                &["-o", "json", "--limit", "2", "--page-token", &token],
            ]
            .concat(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(second["bars"][0], all[1], "{second}");
    assert_eq!(second["bars"][1], all[2], "{second}");
    // The table says that it stopped short, and prints times as RFC 3339.
    let table = stdout(
        &c.ctl(&[&bars[..], &["--limit", "1"]].concat())
            .await
            .unwrap(),
    );
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("START"), "{table}");
    assert!(
        // The night session of Friday 29 November opens trading day 2024-12-02.
        rows[1].starts_with("2024-11-29T13:00:00Z  20241202"),
        "{table}"
    );
    assert!(rows[2].starts_with("(more: add --page-token "), "{table}");

    // Ticks from an RFC 3339 time and from the same instant in nanoseconds agree; the table
    // prints times as RFC 3339.
    let ticks = [
        "ticks",
        "--instrument",
        "cu2501",
        "-o",
        "json",
        "--limit",
        "5",
    ];
    let head = json(&c.ctl(&ticks).await.unwrap());
    let third = head["ticks"][2]["datetime"].as_i64().unwrap();
    let rfc3339 = chrono::DateTime::from_timestamp_nanos(third)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let by_time = json(
        &c.ctl(&[&ticks[..], &["--from", &rfc3339]].concat())
            .await
            .unwrap(),
    );
    let by_ns = json(
        &c.ctl(&[&ticks[..], &["--from", &third.to_string()]].concat())
            .await
            .unwrap(),
    );
    assert_eq!(by_time["ticks"], by_ns["ticks"]);
    assert_eq!(
        by_time["ticks"][0]["datetime"].as_i64(),
        Some(third),
        "{by_time}"
    );
    let day = &rfc3339[..10];
    let by_day = json(
        &c.ctl(&[&ticks[..], &["--from", day]].concat())
            .await
            .unwrap(),
    );
    assert_eq!(
        by_day["ticks"], head["ticks"],
        "all of them are later on {day}"
    );
    let table = stdout(
        &c.ctl(&["ticks", "--instrument", "cu2501", "--limit", "3"])
            .await
            .unwrap(),
    );
    assert!(
        table.lines().nth(3).unwrap().starts_with(&rfc3339),
        "{rfc3339}\n{table}"
    );

    // An instrument with no data: nothing, from ticks and from bars alike.
    for what in ["ticks", "bars"] {
        let o = json(
            &c.ctl(&[what, "--instrument", "zz9999", "-o", "json"])
                .await
                .unwrap(),
        );
        assert_eq!(o[what], Value::Array(vec![]), "{what}: {o}");
    }

    // `orders` and `order` count an order's updates alike.
    let updates = |text: &str| -> String {
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let col = header.find("UPDATES").unwrap_or_else(|| panic!("{text}"));
        let row = lines.next().unwrap();
        row.get(col..)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let one = stdout(
        &c.ctl(&["order", "--user", "k1", "--order", "o1"])
            .await
            .unwrap(),
    );
    let many = stdout(&c.ctl(&["orders", "--user", "k1"]).await.unwrap());
    assert_eq!(updates(&one), "2", "{one}");
    assert_eq!(updates(&many), "2", "{many}");

    // A reader that goes away ends the command quietly: no panic, status 0.
    let endpoints = c.endpoints().join(",");
    let mut child = c
        .ctl_command(&endpoints)
        .args(["orders", "--user", "k1", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {EXE} ctl --endpoints {endpoints} {} orders --user k1 -o json | head -1",
            c.cli_tls_args().join(" ")
        ))
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(stdout(&piped), "{\n");

    // Status asked through a follower still knows every member's lag.
    let follower = c.others(leader)[0];
    let mut order_first = vec![c.api(follower)];
    order_first.extend(c.endpoints().into_iter().filter(|e| *e != c.api(follower)));
    let o = c
        .ctl_command(&order_first.join(","))
        .args(["status", "-o", "json"])
        .output()
        .unwrap();
    let s = json(&o);
    for m in s["members"].as_array().unwrap() {
        assert!(m["replication_lag"].is_u64(), "no lag: {s}");
    }

    // Transferring to the node that leads: nothing to do, said plainly.
    let o = c
        .ctl(&["transfer-leader", "--to", &leader.to_string()])
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("already leads"), "{}", stdout(&o));

    // A one-second bench with no warm-up measures writes (making the records is not part of
    // a write).
    let bench = Command::new(EXE)
        .args(["bench", "--endpoints", &endpoints, "--duration-secs", "1"])
        .args(c.cli_tls_args())
        .args([
            "--warmup-secs",
            "0",
            "--writers",
            "1",
            "--readers",
            "0",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let b = json(&bench);
    assert!(b["results"][0]["ops"].as_u64().unwrap() > 0, "{b}");

    // A member down: status still prints the table, then fails naming it.
    let down = c.others(leader)[1];
    c.kill(down).unwrap();
    let o = c.ctl(&["status"]).await.unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("node {down}")) && e.contains(&c.api(down)),
        "{e}"
    );
    assert!(stdout(&o).contains("unreachable"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_settings_change_through_the_log_and_keep_what_a_change_does_not_name() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(3, "").await.unwrap();
    let before = json(&c.ctl(&["settings", "get", "-o", "json"]).await.unwrap());
    let text = before["toml"].as_str().unwrap();
    assert!(text.contains("audit_retention_days = 0"), "{text}");
    assert!(text.contains("dedup_window_entries = 1000000"), "{text}");

    let set = c
        .ctl(&[
            "settings",
            "set",
            "audit_retention_days = 400",
            "[retention]",
            "keep_trading_days = 20",
            "-o",
            "json",
        ])
        .await
        .unwrap();
    let text = json(&set)["toml"].as_str().unwrap().to_owned();
    for line in [
        "audit_retention_days = 400",
        "keep_trading_days = 20",
        "dedup_window_entries = 1000000",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // Every node applies it at the same log index: each answers with it, followers too.
    let client = c.client().unwrap();
    for id in 1..=3 {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut admin = client.admin_at(&c.api(id)).unwrap();
            let got = admin
                .get_cluster_settings(client.request(pb::GetClusterSettingsRequest {}))
                .await
                .unwrap()
                .into_inner();
            if got.toml == text {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {id} holds\n{}",
                got.toml
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A wrong change is refused whole, in one line naming the setting, and changes nothing.
    for (change, named) in [
        ("audit_retention_dayz = 4", "audit_retention_dayz"),
        ("dedup_window_entries = 0", "dedup_window_entries"),
    ] {
        let o = c.ctl(&["settings", "set", change]).await.unwrap();
        assert!(!o.status.success(), "{}", stdout(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("INVALID_ARGUMENT") && e.contains(named), "{e}");
    }
    let after = json(&c.ctl(&["settings", "get", "-o", "json"]).await.unwrap());
    assert_eq!(after["toml"].as_str().unwrap(), text);

    // The change is on the audit trail, with what it asked.
    let audit = json(
        &c.ctl(&["audit", "--action", "SetClusterSettings", "-o", "json"])
            .await
            .unwrap(),
    );
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    assert_eq!(entries[0]["result"], "ok", "{audit}");
    assert!(
        entries[0]["detail"]
            .as_str()
            .unwrap()
            .contains("audit_retention_days = 400"),
        "{audit}"
    );
}
