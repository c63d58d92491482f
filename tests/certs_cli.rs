//! `qastore certs` as an operator runs it: a CA, node and client certificates in one
//! directory, what `show` prints, and one-line refusals that write nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_qastore");

fn certs(dir: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .arg("certs")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// Fails, the first line on standard error an error holding `needle`.
fn refused(o: Output, needle: &str) {
    assert!(!o.status.success(), "{o:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error:") && first.contains(needle),
        "{needle:?} not in {first:?}"
    );
}

#[test]
fn an_operator_makes_a_ca_then_node_and_client_certificates_and_reads_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(certs(d, &["init", "--cluster-id", "prod-futures"]));
    assert!(out.contains("certs/ca.pem"), "{out}");
    ok(certs(
        d,
        &[
            "node",
            "--node-id",
            "1",
            "--host",
            "node1.example",
            "--host",
            "10.0.0.1",
        ],
    ));
    ok(certs(d, &["node", "--node-id", "2"]));
    ok(certs(
        d,
        &[
            "client", "--name", "ops", "--role", "admin", "--role", "reader", "--days", "30",
        ],
    ));

    let shown = ok(certs(
        d,
        &[
            "show",
            "certs/ca.pem",
            "certs/node-1.pem",
            "certs/node-2.pem",
            "certs/client-ops.pem",
        ],
    ));
    assert!(
        shown.contains("certs/ca.pem: the CA of cluster prod-futures"),
        "{shown}"
    );
    assert!(
        shown.contains("certs/node-1.pem: node 1 of cluster prod-futures"),
        "{shown}"
    );
    assert!(
        shown.contains("hosts     node1.example, 10.0.0.1"),
        "{shown}"
    );
    assert!(shown.contains("hosts     localhost, 127.0.0.1"), "{shown}");
    assert!(
        shown.contains("certs/client-ops.pem: client ops of cluster prod-futures"),
        "{shown}"
    );
    assert!(shown.contains("roles     reader, admin"), "{shown}");
    assert!(
        shown.contains("(29 days left)") || shown.contains("(30 days left)"),
        "{shown}"
    );

    // Renewing a node's certificate asks for it explicitly, and gives a new key.
    let key_before = std::fs::read(d.join("certs/node-1.key")).unwrap();
    refused(certs(d, &["node", "--node-id", "1"]), "--replace");
    assert_eq!(
        std::fs::read(d.join("certs/node-1.key")).unwrap(),
        key_before
    );
    ok(certs(d, &["node", "--node-id", "1", "--replace"]));
    assert_ne!(
        std::fs::read(d.join("certs/node-1.key")).unwrap(),
        key_before
    );
}

#[test]
fn bad_requests_are_refused_in_one_line_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    refused(certs(d, &["node", "--node-id", "1"]), "certs init");
    refused(
        certs(d, &["init", "--cluster-id", "no spaces"]),
        "cluster id",
    );
    assert!(!d.join("certs/ca.pem").exists());
    ok(certs(d, &["init", "--cluster-id", "c1"]));
    let ca = std::fs::read(d.join("certs/ca.pem")).unwrap();
    refused(certs(d, &["init", "--cluster-id", "c1"]), "never replaced");
    assert_eq!(std::fs::read(d.join("certs/ca.pem")).unwrap(), ca);
    refused(certs(d, &["node", "--node-id", "0"]), "node id");
    refused(
        certs(d, &["node", "--node-id", "3", "--host", "bad host"]),
        "host",
    );
    refused(certs(d, &["node", "--node-id", "3", "--days", "0"]), "days");
    refused(
        certs(d, &["client", "--name", "x", "--role", "root"]),
        "not a role",
    );
    refused(certs(d, &["client", "--name", "x"]), "required arguments");
    refused(
        certs(d, &["client", "--name", "a/b", "--role", "reader"]),
        "client name",
    );
    refused(
        certs(d, &["show", "certs/ca.key"]),
        "where a certificate belongs",
    );
    refused(certs(d, &["show", "certs/none.pem"]), "certs/none.pem");
    let files: Vec<_> = std::fs::read_dir(d.join("certs")).unwrap().collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[test]
fn an_operator_makes_the_token_key_once_and_signs_tokens_every_node_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    refused(certs(d, &["token-key"]), "make the CA first");
    ok(certs(d, &["init", "--cluster-id", "prod-futures"]));
    refused(
        certs(d, &["token", "--name", "nb", "--role", "reader"]),
        "make the token key first",
    );
    let out = ok(certs(d, &["token-key"]));
    assert!(
        out.contains("token.pub") && out.contains("token.key"),
        "{out}"
    );
    refused(certs(d, &["token-key"]), "never replaced");
    let token = ok(certs(
        d,
        &["token", "--name", "nb", "--role", "reader", "--days", "3"],
    ));
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let public = std::fs::read_to_string(d.join("certs/token.pub")).unwrap();
    let verifier = qastore_security::token::TokenVerifier::new("prod-futures", &public).unwrap();
    let holder = verifier.verify(token).unwrap();
    assert_eq!(holder.roles, vec![qastore_security::Role::Reader]);
    refused(
        certs(d, &["token", "--name", "nb", "--role", "root"]),
        "not a role",
    );
    refused(
        certs(
            d,
            &["token", "--name", "nb", "--role", "reader", "--days", "0"],
        ),
        "days",
    );
}
