//! Certificates renewed and the CA rolled while a writer and a reader run, without restarting
//! a node: every call succeeds (the client library retries over reconnects), the nodes serve
//! the new certificates, a client still holding the retired CA's certificate is turned away,
//! SIGHUP reads the files at once, and the expiry metric and `ctl status` show what is in use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qastore_client::{Client, ClientConfig, ClientTls};
use qastore_proto::v1 as pb;
use qastore_security::{Authority, CertDir, Role};
use qastore_testkit::requests::{orders_at, read};
use qastore_testkit::samples::order;
use qastore_testkit::signal::{kill, Signal};
use qastore_testkit::{ClusterSpec, ProcCluster, SERIAL};

fn authority(certs: &CertDir) -> Authority {
    let pair = certs.ca();
    Authority::from_pem(
        &std::fs::read_to_string(&pair.cert).unwrap(),
        &std::fs::read_to_string(&pair.key).unwrap(),
    )
    .unwrap()
}

/// Issues node `id`'s certificate (and the operator's, `admin`) anew from `ca`, replacing the
/// files in place.
fn reissue(certs: &CertDir, ca: &Authority, ids: &[u64], client: bool) {
    for &id in ids {
        let n = ca
            .issue_node(id, &["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap();
        certs
            .write_pair(&certs.node(id), &n.cert_pem, &n.key_pem, true)
            .unwrap();
    }
    if client {
        let c = ca.issue_client("admin", &Role::ALL, 30).unwrap();
        certs
            .write_pair(&certs.client("admin"), &c.cert_pem, &c.key_pem, true)
            .unwrap();
    }
}

/// Writes `pems` as the trusted CA bundle, in place.
fn trust(certs: &CertDir, pems: &[&str]) {
    let path = certs.ca().cert;
    let tmp = path.with_extension("pem.new");
    std::fs::write(&tmp, pems.concat()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn client(endpoints: &[String], tls: ClientTls) -> Client {
    Client::new(
        endpoints,
        ClientConfig {
            client_id: "rotation-check".into(),
            call_timeout: Duration::from_secs(2),
            retry_for: Duration::from_millis(500),
            tls: Some(tls),
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

fn serial_of(pem_path: &Path) -> String {
    let pem = std::fs::read(pem_path).unwrap();
    qastore_security::inspect_pem("cert", &pem).unwrap()[0]
        .serial
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_the_ca_rotate_under_load_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::create(ClusterSpec::test(3)).unwrap();
    for id in c.ids() {
        c.spawn(id, id == 1).unwrap();
    }
    c.wait_leader(Duration::from_secs(30)).await.unwrap();
    let pids: Vec<u32> = c
        .ids()
        .iter()
        .map(|id| c.nodes[id].pid().unwrap())
        .collect();
    let certs = CertDir::new(c.certs_dir().unwrap());
    let endpoints = c.endpoints();

    // A writer and a reader, each with the kit's client: it re-reads its files when they change.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, stop, failures, written) = (
            c.client().unwrap(),
            stop.clone(),
            failures.clone(),
            written.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match client
                    .write(vec![order("rot", &format!("o{n}"))], pb::AckLevel::Quorum)
                    .await
                {
                    Ok(_) => {
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.lock().push(format!("write o{n}: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let reader = {
        let (client, stop, failures) = (c.client().unwrap(), stop.clone(), failures.clone());
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let at = &endpoints[i % endpoints.len()];
                if let Err(e) = orders_at(
                    &client,
                    at,
                    "rot",
                    read(pb::Consistency::Linearizable, 0, 0),
                )
                .await
                {
                    failures.lock().push(format!("read at {at}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let settle = || tokio::time::sleep(Duration::from_millis(2500));
    settle().await;

    // 1. Node 1's certificate is renewed in place; SIGHUP makes it read the files at once.
    let old_ca = authority(&certs);
    let old_ca_pem = old_ca.cert_pem().to_string();
    let before = serial_of(&certs.node(1).cert);
    reissue(&certs, &old_ca, &[1], false);
    kill(pids[0], Signal::Hup).unwrap();
    settle().await;

    // 2. The CA is rolled: trust old and new, reissue every leaf from the new one, then trust
    //    the new one alone. A copy of the operator's old certificate is kept to try later.
    let retired = tempfile::tempdir().unwrap();
    let retired_certs = CertDir::new(retired.path());
    std::fs::copy(
        certs.client("admin").cert,
        retired_certs.client("admin").cert,
    )
    .unwrap();
    std::fs::copy(certs.client("admin").key, retired_certs.client("admin").key).unwrap();
    let new_ca = Authority::create(&c.cluster_id, 30).unwrap();
    trust(&certs, &[&old_ca_pem, new_ca.cert_pem()]);
    settle().await;
    reissue(&certs, &new_ca, &c.ids(), true);
    settle().await;
    trust(&certs, &[new_ca.cert_pem()]);
    std::fs::write(certs.ca().key, new_ca.key_pem()).unwrap();
    settle().await;

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    reader.await.unwrap();
    let failures = failures.lock().clone();
    assert!(
        failures.is_empty(),
        "calls failed during the rotation: {failures:#?}"
    );
    assert!(
        written.load(Ordering::Relaxed) > 50,
        "the writer barely wrote"
    );
    assert_ne!(serial_of(&certs.node(1).cert), before);

    // No node restarted.
    let now: Vec<u32> = c
        .ids()
        .iter()
        .map(|id| c.nodes[id].pid().unwrap())
        .collect();
    assert_eq!(now, pids);

    // A client holding only the new CA and a certificate it issued is served by every node;
    // one still holding the retired CA's certificate is turned away.
    let fresh = ClientTls::from_files(
        &certs.ca().cert,
        &certs.client("admin").cert,
        &certs.client("admin").key,
    )
    .unwrap();
    let retired_tls = ClientTls {
        ca_pem: new_ca.cert_pem().as_bytes().to_vec(),
        cert_pem: std::fs::read(retired_certs.client("admin").cert).unwrap(),
        key_pem: std::fs::read(retired_certs.client("admin").key).unwrap(),
        files: None,
    };
    for addr in &endpoints {
        let ok = client(std::slice::from_ref(addr), fresh.clone());
        orders_at(&ok, addr, "rot", read(pb::Consistency::Local, 0, 0))
            .await
            .unwrap_or_else(|e| panic!("{addr} refused the new certificate: {e}"));
        let old = client(std::slice::from_ref(addr), retired_tls.clone());
        assert!(
            orders_at(&old, addr, "rot", read(pb::Consistency::Local, 0, 0))
                .await
                .is_err(),
            "{addr} still accepts a certificate of the retired CA"
        );
    }

    // What is in use shows in the metrics and in `ctl status`.
    let (_, page) = c.http_get(1, "/metrics").unwrap();
    let node_expiry: f64 = page
        .lines()
        .find_map(|l| {
            l.strip_prefix("qastore_tls_certificate_expiry_seconds{certificate=\"node\"} ")
        })
        .unwrap_or_else(|| panic!("no expiry gauge in\n{page}"))
        .trim()
        .parse()
        .unwrap();
    assert!(node_expiry > 29.0 * 86_400.0, "{node_expiry}");
    let new_serial = serial_of(&certs.ca().cert);
    assert!(
        page.contains(&format!("certificate=\"ca:{new_serial}\"")),
        "the new CA is not the one in use:\n{page}"
    );
    let loads = page
        .lines()
        .find_map(|l| l.strip_prefix("qastore_tls_loads_total "))
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap();
    assert!(loads >= 3, "node 1 loaded new material {loads} times");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_qastore"))
        .args([
            "ctl",
            "--endpoints",
            &endpoints.join(","),
            "status",
            "-o",
            "json",
        ])
        .arg("--cert-dir")
        .arg(c.certs_dir().unwrap())
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains("cert_not_after_ns"));
}
