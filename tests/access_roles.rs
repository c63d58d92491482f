//! Who may call what on a cluster running mutual TLS: every method of the `Store`, `Feed` and
//! `Admin` services is called by a client holding each role, and only the role the method
//! needs gets through (the list of methods comes from the `.proto` files, so a new method
//! without a rule fails here); clients without a certificate, with one from another CA or an
//! expired one never reach a method; the access table replaces a client's certificate roles
//! through the log, the same on every node; every operator action and every refused call is
//! on record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use qastore_client::{Client, ClientConfig, ClientTls};
use qastore_proto::v1 as pb;
use qastore_security::token::{new_token_key, TokenIssuer};
use qastore_security::{Authority, CertDir, Role};
use qastore_testkit::requests::orders_at;
use qastore_testkit::samples::order;
use qastore_testkit::{ProcCluster, SERIAL};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Code;

const CLUSTER: &str = "roles-test";

/// Who may call a method.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Any identity of the cluster (finding the leader and the members).
    AnyIdentity,
    /// Holders of this role.
    Role(Role),
    /// The cluster's nodes only.
    NodesOnly,
}

/// The rule for each method, written out here apart from the node's own table.
fn expected(path: &str) -> Option<Expect> {
    let (service, method) = path.strip_prefix("/qastore.v1.")?.split_once('/')?;
    Some(match (service, method) {
        ("Store", "Write" | "WriteStream") => Expect::Role(Role::Writer),
        ("Store", _) => Expect::Role(Role::Reader),
        ("Feed", _) => Expect::Role(Role::Subscriber),
        ("Admin", "GetNodeStatus" | "ClusterStatus" | "Members") => Expect::AnyIdentity,
        ("Admin", "RecordAudit") => Expect::NodesOnly,
        ("Admin", _) => Expect::Role(Role::Admin),
        _ => return None,
    })
}

fn make_certs(root: &Path) -> CertDir {
    let dir = CertDir::new(root);
    let ca = Authority::create(CLUSTER, 30).unwrap();
    dir.write_pair(&dir.ca(), ca.cert_pem(), ca.key_pem(), false)
        .unwrap();
    for id in 1..=3 {
        let n = ca
            .issue_node(id, &["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap();
        dir.write_pair(&dir.node(id), &n.cert_pem, &n.key_pem, false)
            .unwrap();
    }
    let mut clients: Vec<(String, Vec<Role>)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), vec![*r]))
        .collect();
    clients.push(("ops".into(), Role::ALL.to_vec()));
    for (name, roles) in clients {
        let c = ca.issue_client(&name, &roles, 30).unwrap();
        dir.write_pair(&dir.client(&name), &c.cert_pem, &c.key_pem, false)
            .unwrap();
    }
    // The token key: tokens for clients without a certificate.
    let (key, public) = new_token_key().unwrap();
    dir.write_pair(&dir.token_key(), &public, &key, false)
        .unwrap();
    // Expired yesterday.
    let now = time::OffsetDateTime::now_utc();
    let old = ca
        .issue_client_valid(
            "expired",
            &Role::ALL,
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    dir.write_pair(&dir.client("expired"), &old.cert_pem, &old.key_pem, false)
        .unwrap();
    dir
}

fn tls_of(dir: &CertDir, name: &str) -> ClientTls {
    let p = dir.client(name);
    ClientTls::from_files(&dir.ca().cert, &p.cert, &p.key).unwrap()
}

fn client(endpoints: &[String], tls: Option<ClientTls>) -> Client {
    Client::new(
        endpoints,
        ClientConfig {
            call_timeout: Duration::from_secs(20),
            retry_for: Duration::from_millis(200),
            tls,
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

/// Calls `path` on `addr` with an empty message (every request's fields at their defaults),
/// as a stream of one so that streaming methods are called too: the status the call got
/// (OK once the answer's headers arrive).
async fn raw_call(
    client: &Client,
    addr: &str,
    path: &'static str,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    let channel = client
        .channel_at(addr)
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(futures::stream::iter([()]));
    request.set_timeout(Duration::from_secs(20));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let call = grpc.streaming(request, PathAndQuery::from_static(path), codec);
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in 30 s")),
    }
}

fn refused(code: Code) -> bool {
    matches!(code, Code::PermissionDenied | Code::Unauthenticated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_takes_its_role_and_refuses_every_other() {
    let _serial = SERIAL.lock().await;
    let certs = tempfile::tempdir().unwrap();
    let dir = make_certs(certs.path());
    let settings = format!(
        "[tls]\ndir = \"{}\"\ntoken_key_file = \"{}\"\n",
        certs.path().display(),
        dir.token_key().cert.display()
    );
    let mut c = ProcCluster::prepare(3, CLUSTER, &settings, 1).unwrap();
    c.set_client_tls(Some(tls_of(&dir, "ops")));
    for id in c.ids() {
        c.spawn(id, id == 1).unwrap();
    }
    let (leader, _) = c.wait_leader(Duration::from_secs(30)).await.unwrap();
    let leader_addr = c.api(leader);
    let ops = c.client().unwrap();
    ops.write(vec![order("u1", "o1")], pb::AckLevel::Quorum)
        .await
        .unwrap();

    // Each role, by certificate and by token; then callers no method may admit.
    let issuer = TokenIssuer::new(
        CLUSTER,
        &std::fs::read_to_string(dir.token_key().key).unwrap(),
    )
    .unwrap();
    let ca_only = || ClientTls::ca_only(&dir.ca().cert).unwrap();
    let leader_only = std::slice::from_ref(&leader_addr);
    let mut callers: Vec<(String, Client, Option<String>, Option<Role>)> = Vec::new();
    for role in Role::ALL {
        let by_cert = client(leader_only, Some(tls_of(&dir, role.as_str())));
        callers.push((format!("{role} (certificate)"), by_cert, None, Some(role)));
        let token = issuer.issue(role.as_str(), &[role], 1).unwrap();
        let by_token = client(leader_only, Some(ca_only()));
        callers.push((format!("{role} (token)"), by_token, Some(token), Some(role)));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = issuer
        .issue_valid("admin", &Role::ALL, now - 3 * 86_400, 86_400)
        .unwrap();
    let (foreign_key, _) = new_token_key().unwrap();
    let forged = TokenIssuer::new(CLUSTER, &foreign_key)
        .unwrap()
        .issue("admin", &Role::ALL, 1)
        .unwrap();
    for (label, token) in [
        ("an expired token", Some(expired)),
        ("a token of another key", Some(forged)),
        ("neither certificate nor token", None),
    ] {
        callers.push((
            label.into(),
            client(leader_only, Some(ca_only())),
            token,
            None,
        ));
    }

    for path in qastore_proto::API_METHODS {
        let Some(expected) = expected(path) else {
            panic!("{path}: the test does not know this method; say which role it needs");
        };
        for (label, who, token, role) in &callers {
            let answer = raw_call(who, &leader_addr, path, token.as_deref()).await;
            let Some(role) = *role else {
                let e = answer.expect_err(&format!("{path}: {label} got through"));
                assert_eq!(e.code(), Code::Unauthenticated, "{path}, {label}: {e:?}");
                continue;
            };
            let admitted = match expected {
                Expect::AnyIdentity => true,
                Expect::Role(need) => need == role,
                Expect::NodesOnly => false,
            };
            match (&answer, admitted) {
                (Err(s), true) if refused(s.code()) => {
                    panic!("{path}: a {label} was refused: {s:?}")
                }
                (Ok(()), false) => panic!("{path}: a {label} got through"),
                (Err(s), false) => {
                    assert_eq!(s.code(), Code::PermissionDenied, "{path} as {label}: {s:?}");
                    let m = s.message();
                    assert!(
                        m.contains(&format!("client {role} of cluster {CLUSTER}")),
                        "{path} as {label}: the refusal does not say who: {m}"
                    );
                }
                _ => {}
            }
        }
    }

    // Through the library and the command line, a token works as a certificate does.
    let reader_token = issuer.issue("notebook", &[Role::Reader], 1).unwrap();
    let notebook = Client::new(
        leader_only,
        ClientConfig {
            tls: Some(ca_only()),
            token: Some(reader_token.clone()),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let orders = orders_at(&notebook, &leader_addr, "u1", None)
        .await
        .unwrap();
    assert_eq!(orders.orders.len(), 1);
    let e = notebook
        .write(vec![order("u1", "by-token")], pb::AckLevel::Quorum)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "client notebook of cluster roles-test lacks role writer (holds reader by its token)"
        ),
        "{e}"
    );
    let token_file = certs.path().join("notebook.token");
    std::fs::write(&token_file, &reader_token).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qastore"))
        .args(["ctl", "--endpoints", &leader_addr, "--ca-file"])
        .arg(dir.ca().cert)
        .arg("--token-file")
        .arg(&token_file)
        .args(["orders", "--user", "u1", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"o1\""),
        "{out:?}"
    );

    // Strangers never reach a method: no certificate, another CA's, an expired one.
    let other = tempfile::tempdir().unwrap();
    let other_dir = make_certs(other.path());
    let strangers = [
        ("no certificate", None),
        (
            "another CA",
            Some(ClientTls {
                ca_pem: std::fs::read(dir.ca().cert).unwrap(),
                files: None,
                ..tls_of(&other_dir, "ops")
            }),
        ),
        ("expired", Some(tls_of(&dir, "expired"))),
    ];
    for (what, tls) in strangers {
        let who = client(std::slice::from_ref(&leader_addr), tls);
        for path in [
            "/qastore.v1.Store/Write",
            "/qastore.v1.Admin/Halt",
            "/qastore.v1.Admin/GetNodeStatus",
        ] {
            // Turned away at the handshake: the call fails in the transport (how exactly
            // depends on when the client notices), never with an answer from a method.
            let e = raw_call(&who, &leader_addr, path, None).await.unwrap_err();
            assert!(
                matches!(
                    e.code(),
                    Code::Unavailable
                        | Code::Unknown
                        | Code::Unauthenticated
                        | Code::Cancelled
                        | Code::Internal
                ),
                "{what} calling {path}: {e:?}"
            );
        }
    }

    // The access table replaces a client's certificate roles, on every node.
    let admin = c.client().unwrap();
    let mut a = admin.admin_at(&leader_addr).unwrap();
    let set = a
        .set_access(admin.request(pb::SetAccessRequest {
            client: "reader".into(),
            roles: vec!["writer".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.roles, vec!["writer"]);
    assert!(set.set_by.contains("client ops"), "{set:?}");
    let e = a
        .set_access(admin.request(pb::SetAccessRequest {
            client: "reader".into(),
            roles: vec!["root".into()],
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("field roles"), "{e:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in c.ids() {
        let addr = c.api(id);
        let reader = client(std::slice::from_ref(&addr), Some(tls_of(&dir, "reader")));
        let e = raw_call(&reader, &addr, "/qastore.v1.Store/GetOrder", None)
            .await
            .unwrap_err();
        assert!(
            e.message().contains("by the cluster's access table"),
            "node {id}: {e:?}"
        );
        reader
            .write(
                vec![order("u1", &format!("by-reader-{id}"))],
                pb::AckLevel::Quorum,
            )
            .await
            .unwrap();
    }
    a.remove_access(admin.request(pb::RemoveAccessRequest {
        client: "reader".into(),
    }))
    .await
    .unwrap();

    // Scopes: the table limits a reader to one user's data (market data stays readable) ...
    let operator = client(leader_only, Some(tls_of(&dir, "admin")));
    let mut op = operator.admin_at(&leader_addr).unwrap();
    let scoped = op
        .set_access(operator.request(pb::SetAccessRequest {
            client: "reader".into(),
            roles: vec!["reader".into(), "subscriber".into()],
            users: vec!["u1".into()],
            instruments: vec![],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scoped.users, vec!["u1"]);
    let reader = client(leader_only, Some(tls_of(&dir, "reader")));
    orders_at(&reader, &leader_addr, "u1", None).await.unwrap();
    let e = orders_at(&reader, &leader_addr, "u2", None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("may read users u1 only, not u2"),
        "{e}"
    );
    let ticks = |who: &Client, instrument: &str| {
        let mut store = who.store_at(&leader_addr).unwrap();
        let req = who.request(pb::ListTicksRequest {
            instrument_id: instrument.into(),
            ..Default::default()
        });
        async move { store.list_ticks(req).await }
    };
    ticks(&reader, "rb2501").await.unwrap();
    let mut store = reader.store_at(&leader_addr).unwrap();
    let e = store
        .list_trades(reader.request(pb::ListTradesRequest {
            of: Some(pb::list_trades_request::Of::InstrumentId("rb2501".into())),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let subscribe = |who: &Client, users: &[&str]| {
        let mut feed = who.feed_at(&leader_addr).unwrap();
        let req = who.request(pb::SubscribeRequest {
            filter: Some(pb::EventFilter {
                users: users.iter().map(|u| u.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        });
        async move { feed.subscribe(req).await.map(|_| ()) }
    };
    let e = subscribe(&reader, &[]).await.unwrap_err();
    assert!(e.message().contains("filter on them"), "{e:?}");
    subscribe(&reader, &["u1"]).await.unwrap();
    op.remove_access(operator.request(pb::RemoveAccessRequest {
        client: "reader".into(),
    }))
    .await
    .unwrap();
    // ... and a token limits its holder to some instruments.
    let rb_only = issuer
        .issue_scoped("rb-desk", &[Role::Reader], &[], &["SHFE.rb*".into()], 1)
        .unwrap();
    let desk = Client::new(
        leader_only,
        ClientConfig {
            tls: Some(ca_only()),
            token: Some(rb_only),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    ticks(&desk, "rb2501").await.unwrap();
    let e = ticks(&desk, "cu2501").await.unwrap_err();
    assert!(
        e.message()
            .contains("may read instruments SHFE.rb* only, not cu2501"),
        "{e:?}"
    );
    assert!(orders_at(&desk, &leader_addr, "u1", None).await.is_err());

    // The trail holds the access changes, the same on every node; refused calls stay on the
    // node that refused them.
    let mut trails = Vec::new();
    for id in c.ids() {
        let mut a = admin.admin_at(&c.api(id)).unwrap();
        let mut trail = Vec::new();
        for _ in 0..50 {
            trail = a
                .list_audit(admin.request(pb::ListAuditRequest {
                    action: "Access".into(),
                    who: "client ops".into(),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner()
                .entries;
            if trail.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trails.push(trail);
    }
    let actions: Vec<(&str, bool)> = trails[0]
        .iter()
        .map(|e| (e.action.as_str(), e.result == "ok"))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("Admin/SetAccess", true),
            ("Admin/SetAccess", false),
            ("Admin/RemoveAccess", true)
        ]
    );
    assert!(
        trails[0][0].who.contains("client ops"),
        "{:?}",
        trails[0][0]
    );
    assert!(trails.iter().all(|t| t == &trails[0]), "{trails:#?}");
    // The whole trail (the admin's calls above included) reads the same on every node.
    let mut whole = Vec::new();
    for id in c.ids() {
        let mut a = admin.admin_at(&c.api(id)).unwrap();
        let all = a
            .list_audit(admin.request(pb::ListAuditRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .entries;
        whole.push(all);
    }
    assert!(whole[0].len() > 10, "{:#?}", whole[0]);
    assert!(whole.iter().all(|t| t == &whole[0]));
    assert!(whole[0]
        .iter()
        .any(|e| e.action == "Admin/TriggerSnapshot" && e.who.contains("client admin")));
    let refused_here = a
        .list_audit(admin.request(pb::ListAuditRequest {
            refused: true,
            who: "client writer".into(),
            action: "Admin/Halt".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(refused_here.len(), 1, "{refused_here:#?}");
    assert!(refused_here[0].result.starts_with("PERMISSION_DENIED: "));

    // The token key is rolled with the nodes running: the new public key beside the old one,
    // then alone. Nodes look at the file at most once a second.
    let token_pub = dir.token_key().cert;
    let old_public = std::fs::read_to_string(&token_pub).unwrap();
    let (new_key, new_public) = new_token_key().unwrap();
    let new_issuer = TokenIssuer::new("roles-test", &new_key).unwrap();
    let rolled = Client::new(
        leader_only,
        ClientConfig {
            tls: Some(ca_only()),
            token: Some(new_issuer.issue("notebook", &[Role::Reader], 1).unwrap()),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let replace = |text: String| {
        let tmp = token_pub.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &token_pub).unwrap();
    };
    let until = |what: &'static str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        move || assert!(std::time::Instant::now() < deadline, "{what}")
    };
    replace(format!("{old_public}{new_public}"));
    let check = until("the node never took the new token key");
    while orders_at(&rolled, &leader_addr, "u1", None).await.is_err() {
        check();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    orders_at(&notebook, &leader_addr, "u1", None)
        .await
        .unwrap();
    replace(new_public);
    let check = until("the node kept accepting the retired token key");
    loop {
        match orders_at(&notebook, &leader_addr, "u1", None).await {
            Ok(_) => check(),
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
                assert!(
                    e.message()
                        .contains("not signed with this cluster's token key"),
                    "{e}"
                );
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    orders_at(&rolled, &leader_addr, "u1", None).await.unwrap();
    // The node's metrics follow the file: one key in use, loaded twice since the start.
    let https = qastore_testkit::certs::https_config(certs.path()).unwrap();
    let check = until("the token key metrics did not follow the file");
    loop {
        let (code, page) =
            qastore_testkit::http::https(c.nodes[&leader].http, "GET", "/metrics", https.clone())
                .unwrap();
        assert_eq!(code, 200, "{page}");
        if page.contains("\nqastore_token_keys 1\n")
            && page.contains("\nqastore_token_key_loads_total 2\n")
        {
            break;
        }
        check();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
