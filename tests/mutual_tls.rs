//! A cluster on mutual TLS, as an operator sets it up with `qastore certs` and a `[tls]`
//! section: its nodes replicate, forward and answer reads over TLS, clients holding a
//! certificate from the cluster's CA are served, and anyone else is turned away before any
//! call reaches the node; a node given another node's certificate refuses to start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use qastore_client::{Client, ClientConfig, ClientTls};
use qastore_proto::v1 as pb;
use qastore_security::{Authority, CertDir, Role};
use qastore_testkit::requests::{orders_at, read};
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};

const EXE: &str = env!("CARGO_BIN_EXE_qastore");

fn client_tls(dir: &CertDir, name: &str) -> ClientTls {
    let p = dir.client(name);
    ClientTls::from_files(&dir.ca().cert, &p.cert, &p.key).unwrap()
}

/// A CA for `cluster` in `root`, certificates for nodes 1-3 and the client `ops`.
fn make_certs(root: &Path, cluster: &str) -> (CertDir, Authority) {
    let dir = CertDir::new(root);
    let ca = Authority::create(cluster, 30).unwrap();
    dir.write_pair(&dir.ca(), ca.cert_pem(), ca.key_pem(), false)
        .unwrap();
    for id in 1..=3 {
        let n = ca
            .issue_node(id, &["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap();
        dir.write_pair(&dir.node(id), &n.cert_pem, &n.key_pem, false)
            .unwrap();
    }
    let ops = ca
        .issue_client("ops", &[Role::Writer, Role::Reader, Role::Admin], 30)
        .unwrap();
    dir.write_pair(&dir.client("ops"), &ops.cert_pem, &ops.key_pem, false)
        .unwrap();
    (dir, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_mutual_tls_serves_its_clients_and_turns_everyone_else_away() {
    let _serial = SERIAL.lock().await;
    let certs = tempfile::tempdir().unwrap();
    let (dir, _ca) = make_certs(certs.path(), "test-cluster");
    let settings = format!("[tls]\ndir = \"{}\"\n", certs.path().display());
    let mut c = ProcCluster::prepare(3, "test-cluster", &settings, 1).unwrap();
    c.set_client_tls(Some(client_tls(&dir, "ops")));
    for id in c.ids() {
        c.spawn(id, id == 1).unwrap();
    }
    let (leader, _) = c.wait_leader(Duration::from_secs(30)).await.unwrap();
    let client = c.client().unwrap();

    // Writes go to the leader and through a follower (forwarded node to node over TLS).
    for n in 0..5 {
        client
            .write(
                vec![order("tls-user", &format!("o{n}"))],
                pb::AckLevel::Quorum,
            )
            .await
            .unwrap();
    }
    let follower = c.api(c.others(leader)[0]);
    let mut store = client.store_at(&follower).unwrap();
    store
        .write(client.request(qastore_testkit::requests::write_request(
            "ops",
            1,
            vec![order("tls-user", "o5")],
        )))
        .await
        .unwrap();
    // A linearizable read on a follower asks the leader over the peer port.
    let orders = orders_at(
        &client,
        &follower,
        "tls-user",
        read(pb::Consistency::Linearizable, 0, 0),
    )
    .await
    .unwrap();
    assert_eq!(orders.orders.len(), 6);

    // `qastore ctl` with the client's files, and without them.
    let ctl = |tls: bool| {
        let mut cmd = Command::new(EXE);
        cmd.args(["ctl", "--endpoints", &c.endpoints().join(","), "status"]);
        if tls {
            let ops = dir.client("ops");
            cmd.arg("--ca-file")
                .arg(dir.ca().cert)
                .arg("--cert-file")
                .arg(ops.cert)
                .arg("--key-file")
                .arg(ops.key);
        }
        cmd.output().unwrap()
    };
    let out = ctl(true);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("leader"));
    let out = ctl(false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("if the cluster runs TLS"), "{err}");
    // ... or with a client config file naming them (paths relative to the file).
    let config = certs.path().join("client.toml");
    std::fs::write(
        &config,
        "ca_file = \"ca.pem\"\ncert_file = \"client-ops.pem\"\nkey_file = \"client-ops.key\"\n",
    )
    .unwrap();
    let out = Command::new(EXE)
        .args(["ctl", "--endpoints", &c.endpoints().join(","), "status"])
        .env("QASTORE_CLIENT_CONFIG", &config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(&config, "ca_fil = \"ca.pem\"\n").unwrap();
    let out = Command::new(EXE)
        .args(["ctl", "--endpoints", &c.endpoints().join(","), "status"])
        .arg("--client-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--client-config") && err.contains("ca_fil") && err.lines().count() == 1,
        "{err}"
    );

    // No certificate, or one from another CA: nothing gets through, nothing is written.
    let other = tempfile::tempdir().unwrap();
    let (other_dir, _) = make_certs(other.path(), "test-cluster");
    let strangers = [
        None,
        Some(ClientTls {
            ca_pem: std::fs::read(dir.ca().cert).unwrap(),
            files: None,
            ..client_tls(&other_dir, "ops")
        }),
    ];
    for tls in strangers {
        let plain = tls.is_none();
        let stranger = Client::new(
            &c.endpoints(),
            ClientConfig {
                call_timeout: Duration::from_secs(2),
                retry_for: Duration::from_millis(500),
                tls,
                ..ClientConfig::default()
            },
        )
        .unwrap();
        let e = stranger
            .write(vec![order("tls-user", "intruder")], pb::AckLevel::Quorum)
            .await
            .unwrap_err();
        assert!(!e.to_string().is_empty(), "plain={plain}");
        let mut admin = stranger.admin_at(&c.api(leader)).unwrap();
        assert!(
            admin
                .get_node_status(stranger.request(pb::NodeStatusRequest {}))
                .await
                .is_err(),
            "plain={plain}: an admin call was answered"
        );
    }
    let orders = orders_at(
        &client,
        &c.api(leader),
        "tls-user",
        read(pb::Consistency::Linearizable, 0, 0),
    )
    .await
    .unwrap();
    assert_eq!(orders.orders.len(), 6);
}

#[test]
fn a_node_given_another_nodes_certificate_refuses_to_start() {
    let certs = tempfile::tempdir().unwrap();
    let (dir, _) = make_certs(certs.path(), "c1");
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("node1.toml");
    std::fs::write(
        &config,
        format!(
            "cluster_id = \"c1\"\nnode_id = 1\ndata_dir = \"{}\"\napi_listen = \"127.0.0.1:0\"\n\
             raft_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\n[tls]\n\
             ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            data.path().join("d").display(),
            dir.ca().cert.display(),
            dir.node(2).cert.display(),
            dir.node(2).key.display()
        ),
    )
    .unwrap();
    let out = Command::new(EXE)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names node 2 of cluster c1, not node 1 of cluster c1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_connection_limit_is_turned_away_until_one_closes() {
    let _serial = SERIAL.lock().await;
    let mut spec = qastore_testkit::ClusterSpec::test(1);
    spec.settings = "max_connections_per_client = 3\n".into();
    let mut c = ProcCluster::create(spec).unwrap();
    c.spawn(1, true).unwrap();
    c.wait_leader(Duration::from_secs(30)).await.unwrap();
    // The kit's own connections close once its clients are gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tls = c.client_tls().cloned();
    let connect = || {
        Client::new(
            &c.endpoints(),
            ClientConfig {
                call_timeout: Duration::from_secs(2),
                retry_for: Duration::from_millis(300),
                tls: tls.clone(),
                ..ClientConfig::default()
            },
        )
        .unwrap()
    };
    let status = |client: &Client| {
        let mut admin = client.admin_at(&c.api(1)).unwrap();
        let req = client.request(pb::NodeStatusRequest {});
        async move { admin.get_node_status(req).await }
    };
    let held: Vec<Client> = (0..3).map(|_| connect()).collect();
    for client in &held {
        status(client).await.unwrap();
    }
    let extra = connect();
    assert!(
        status(&extra).await.is_err(),
        "a fourth connection was served"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    status(&connect()).await.unwrap();
    let (_, page) = c.http_get(1, "/metrics").unwrap();
    let refused: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("qastore_api_connections_refused_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(refused >= 1, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_speaks_tls_and_acting_on_a_node_takes_an_admin() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcCluster::create(qastore_testkit::ClusterSpec::test(1)).unwrap();
    c.spawn(1, true).unwrap();
    c.wait_leader(Duration::from_secs(30)).await.unwrap();
    let http = c.nodes[&1].http;
    let dir = c.certs_dir().unwrap().to_path_buf();

    // Plain HTTP gets nothing; HTTPS with the cluster's CA serves health and metrics.
    assert!(
        qastore_testkit::http::http(http, "GET", "/readyz")
            .map(|(code, _)| code)
            .unwrap_or(0)
            != 200
    );
    let (code, body) = c.http_get(1, "/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"tls\":true"), "{body}");

    // The kit's client holds every role: it may take a snapshot over HTTP; a reader may not.
    let admin = qastore_testkit::certs::https_config(&dir).unwrap();
    let (code, body) =
        qastore_testkit::http::https(http, "POST", "/admin/snapshot", admin).unwrap();
    assert_eq!(code, 200, "{body}");
    let certs = CertDir::new(&dir);
    let ca = Authority::from_pem(
        &std::fs::read_to_string(certs.ca().cert).unwrap(),
        &std::fs::read_to_string(certs.ca().key).unwrap(),
    )
    .unwrap();
    let reader = ca.issue_client("quant", &[Role::Reader], 1).unwrap();
    let creds = qastore_security::tls::Credentials::from_pem(
        &std::fs::read(certs.ca().cert).unwrap(),
        reader.cert_pem.as_bytes(),
        reader.key_pem.as_bytes(),
        "the reader's certificate",
    )
    .unwrap();
    let config = creds
        .client_config_with(qastore_security::tls::Protocol::Http1)
        .unwrap();
    let (code, body) =
        qastore_testkit::http::https(http, "POST", "/admin/compaction", config).unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("lacks role admin"), "{body}");

    // The snapshot over HTTP is on the audit trail like the gRPC call.
    let client = c.client().unwrap();
    let mut a = client.admin_at(&c.api(1)).unwrap();
    let trail = a
        .list_audit(client.request(pb::ListAuditRequest {
            action: "TriggerSnapshot".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0].detail, "over HTTP");
}
