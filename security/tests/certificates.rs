//! The certificates `qastore certs` makes, tried the way nodes and clients will use them: in a
//! real TLS 1.3 handshake with both sides authenticated, and read back by the inspector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use qastore_security::{inspect_pem, Authority, CertDir, Identity, Role, MAX_DAYS};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem) {
        roots.add(c).unwrap();
    }
    Arc::new(roots)
}

/// Runs a mutual TLS handshake in memory: a server holding `server` (cert, key) and trusting
/// `server_trusts`, a client holding `client` and trusting `client_trusts`, connecting to
/// `server_name`. Returns the client certificate the server saw, or the first error.
fn handshake(
    server: (&str, &str),
    server_trusts: &str,
    client: (&str, &str),
    client_trusts: &str,
    server_name: &str,
) -> Result<Vec<CertificateDer<'static>>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(server_trusts), provider.clone())
            .build()
            .unwrap();
    let server_config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(server.0), key(server.1))?;
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(client_trusts))
        .with_client_auth_cert(certs(client.0), key(client.1))?;
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut c = ClientConnection::new(Arc::new(client_config), name)?;
    let mut s = ServerConnection::new(Arc::new(server_config))?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(s.peer_certificates().unwrap_or_default().to_vec());
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn node_and_client_certificates_pass_a_mutual_tls_handshake_and_name_who_holds_them() {
    let ca = Authority::create("prod-futures", 3650).unwrap();
    let node = ca
        .issue_node(2, &["node2.example".into(), "10.0.0.2".into()], 365)
        .unwrap();
    let client = ca
        .issue_client("risk-engine", &[Role::Reader, Role::Writer], 90)
        .unwrap();

    for server_name in ["node2.example", "10.0.0.2"] {
        let seen = handshake(
            (&node.cert_pem, &node.key_pem),
            ca.cert_pem(),
            (&client.cert_pem, &client.key_pem),
            ca.cert_pem(),
            server_name,
        )
        .unwrap();
        let who = qastore_security::inspect_der("the caller", &seen[0]).unwrap();
        assert_eq!(
            who.identity,
            Some(Identity::Client {
                cluster: "prod-futures".into(),
                name: "risk-engine".into()
            })
        );
        assert_eq!(who.roles, vec![Role::Writer, Role::Reader]);
    }

    // A node dials its peers with the same certificate.
    let peer = ca.issue_node(3, &["node3.example".into()], 365).unwrap();
    let seen = handshake(
        (&node.cert_pem, &node.key_pem),
        ca.cert_pem(),
        (&peer.cert_pem, &peer.key_pem),
        ca.cert_pem(),
        "node2.example",
    )
    .unwrap();
    let who = qastore_security::inspect_der("the peer", &seen[0]).unwrap();
    assert_eq!(
        who.identity,
        Some(Identity::Node {
            cluster: "prod-futures".into(),
            node_id: 3
        })
    );
    assert!(who.roles.is_empty());

    let summary = &inspect_pem("node", node.cert_pem.as_bytes()).unwrap()[0];
    assert_eq!(summary.dns_names, vec!["node2.example".to_string()]);
    assert_eq!(
        summary.ip_addresses,
        vec!["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(!summary.is_ca);
    let days = summary.days_left(time::OffsetDateTime::now_utc());
    assert!((364..=365).contains(&days), "{days}");
}

#[test]
fn what_another_ca_signed_is_refused_on_both_sides() {
    let ca = Authority::create("c1", 30).unwrap();
    let other = Authority::create("c1", 30).unwrap();
    let node = ca.issue_node(1, &["localhost".into()], 30).unwrap();
    let good = ca.issue_client("ops", &[Role::Admin], 30).unwrap();
    let stranger = other.issue_client("ops", &[Role::Admin], 30).unwrap();
    let n = (node.cert_pem.as_str(), node.key_pem.as_str());

    let e = handshake(
        n,
        ca.cert_pem(),
        (&stranger.cert_pem, &stranger.key_pem),
        ca.cert_pem(),
        "localhost",
    )
    .unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    // A client that trusts another CA refuses the node.
    assert!(handshake(
        n,
        ca.cert_pem(),
        (&good.cert_pem, &good.key_pem),
        other.cert_pem(),
        "localhost"
    )
    .is_err());
    // A name the node's certificate does not hold.
    assert!(handshake(
        n,
        ca.cert_pem(),
        (&good.cert_pem, &good.key_pem),
        ca.cert_pem(),
        "node9.example"
    )
    .is_err());
    // A client certificate cannot serve: it is not for server authentication.
    assert!(handshake(
        (&good.cert_pem, &good.key_pem),
        ca.cert_pem(),
        (&good.cert_pem, &good.key_pem),
        ca.cert_pem(),
        "localhost"
    )
    .is_err());
}

#[test]
fn a_ca_read_back_from_its_files_keeps_issuing_certificates_its_cluster_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = CertDir::new(dir.path().join("certs"));
    let ca = Authority::create("c7", 365).unwrap();
    certs_dir
        .write_pair(&certs_dir.ca(), ca.cert_pem(), ca.key_pem(), false)
        .unwrap();

    let again = Authority::from_pem(
        &std::fs::read_to_string(certs_dir.ca().cert).unwrap(),
        &std::fs::read_to_string(certs_dir.ca().key).unwrap(),
    )
    .unwrap();
    assert_eq!(again.cluster(), "c7");
    let node = ca.issue_node(1, &["127.0.0.1".into()], 10).unwrap();
    let client = again.issue_client("w", &[Role::Writer], 10).unwrap();
    handshake(
        (&node.cert_pem, &node.key_pem),
        ca.cert_pem(),
        (&client.cert_pem, &client.key_pem),
        again.cert_pem(),
        "127.0.0.1",
    )
    .unwrap();

    // A key that is not the CA's, and a certificate that is not a CA, are refused.
    let other = Authority::create("c7", 365).unwrap();
    let e = Authority::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
    assert!(e.to_string().contains("does not belong"), "{e}");
    let e = Authority::from_pem(&node.cert_pem, &node.key_pem).unwrap_err();
    assert!(e.to_string().contains("not a QAStore cluster CA"), "{e}");
    let e = Authority::from_pem(&node.key_pem, &node.key_pem).unwrap_err();
    assert!(e.to_string().contains("where a certificate belongs"), "{e}");
}

#[test]
fn bad_names_roles_and_lifetimes_are_refused_naming_the_field() {
    let ca = Authority::create("c1", 30).unwrap();
    let field = |r: qastore_security::Result<qastore_security::Issued>| match r {
        Err(qastore_security::Error::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        field(ca.issue_node(0, &["localhost".into()], 30)),
        "node id"
    );
    assert_eq!(field(ca.issue_node(1, &[], 30)), "host");
    assert_eq!(field(ca.issue_node(1, &["bad host".into()], 30)), "host");
    assert_eq!(field(ca.issue_node(1, &["localhost".into()], 0)), "days");
    assert_eq!(
        field(ca.issue_node(1, &["localhost".into()], MAX_DAYS + 1)),
        "days"
    );
    assert_eq!(
        field(ca.issue_client("a/b", &[Role::Reader], 30)),
        "client name"
    );
    assert_eq!(field(ca.issue_client("a", &[], 30)), "role");
    assert!(matches!(
        Authority::create("no spaces", 30),
        Err(qastore_security::Error::Invalid {
            field: "cluster id",
            ..
        })
    ));
}

#[test]
fn files_are_never_replaced_unless_asked_and_keys_stay_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = CertDir::new(dir.path());
    let ca = Authority::create("c1", 30).unwrap();
    let first = ca.issue_client("alice", &[Role::Reader], 30).unwrap();
    let second = ca.issue_client("alice", &[Role::Admin], 30).unwrap();
    let paths = certs_dir.client("alice");
    certs_dir
        .write_pair(&paths, &first.cert_pem, &first.key_pem, false)
        .unwrap();
    let e = certs_dir
        .write_pair(&paths, &second.cert_pem, &second.key_pem, false)
        .unwrap_err();
    assert!(e.to_string().contains("exists already"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&paths.cert).unwrap(),
        first.cert_pem
    );
    certs_dir
        .write_pair(&paths, &second.cert_pem, &second.key_pem, true)
        .unwrap();
    assert_eq!(std::fs::read_to_string(&paths.key).unwrap(), second.key_pem);
    let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Only the two files: no temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}
