//! Secure by default: `qastore serve` refuses to start a node without TLS unless told so in so
//! many words (`--insecure` or `insecure = true`), and a node that runs insecure says so in its
//! start log line, in `/readyz` and in `ctl status`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use qastore_testkit::{ProcCluster, SERIAL};

const EXE: &str = env!("CARGO_BIN_EXE_qastore");

#[test]
fn a_node_without_tls_settings_refuses_to_start_unless_told_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!("node_id = 1\ndata_dir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    let out = Command::new(EXE)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("refusing to start node 1 without TLS"),
        "{err}"
    );
    assert!(err.contains("--insecure"), "{err}");
    assert!(
        !data.exists(),
        "the refused node touched its data directory"
    );

    // Both at once is a contradiction, refused too.
    std::fs::write(
        &config,
        format!(
            "node_id = 1\ndata_dir = {:?}\n[tls]\ndir = {:?}\n",
            data.display().to_string(),
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(EXE)
        .args(["serve", "--insecure", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure"), "{err}");
    assert!(!data.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_node_says_so_in_its_log_readyz_and_ctl_status() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start_insecure(1, "").await.unwrap();
    let (code, body) = c.http_get(1, "/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"tls\":false"), "{body}");
    assert!(body.contains("insecure: TLS is off"), "{body}");

    let out = Command::new(EXE)
        .args(["ctl", "--endpoints", &c.endpoints().join(","), "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("INSECURE: node 1 run(s) without TLS"),
        "{stdout}"
    );

    let log = c.nodes[&1].read_log();
    let start = log
        .lines()
        .find(|l| l.contains("node serving"))
        .unwrap_or_else(|| panic!("no start line in\n{log}"));
    assert!(start.contains("insecure=true"), "{start}");
}
