//! The TLS acceptor and reloading configs over real loopback TCP: who is calling, strangers
//! and silent callers turned away, and certificates and CAs changed while the server runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use qastore_security::tls::{accept, AcceptOptions, Credentials, ReloadingTls, TlsFiles};
use qastore_security::{inspect_der, Authority, CertDir, Identity, Role};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

fn files(dir: &CertDir, stem_cert: &Path, stem_key: &Path) -> TlsFiles {
    TlsFiles {
        ca: dir.ca().cert,
        cert: stem_cert.to_path_buf(),
        key: stem_key.to_path_buf(),
    }
}

/// A CA in `dir`, node 1's and client `ops`'s certificates.
fn setup(dir: &CertDir) -> Authority {
    let ca = Authority::create("c1", 30).unwrap();
    dir.write_pair(&dir.ca(), ca.cert_pem(), ca.key_pem(), false)
        .unwrap();
    let node = ca
        .issue_node(1, &["localhost".into(), "127.0.0.1".into()], 30)
        .unwrap();
    dir.write_pair(&dir.node(1), &node.cert_pem, &node.key_pem, false)
        .unwrap();
    let ops = ca.issue_client("ops", &[Role::Admin], 30).unwrap();
    dir.write_pair(&dir.client("ops"), &ops.cert_pem, &ops.key_pem, false)
        .unwrap();
    ca
}

async fn connect(
    addr: std::net::SocketAddr,
    client: &Credentials,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = TlsConnector::from(client.client_config().unwrap());
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceptor_names_the_caller_and_turns_away_strangers_and_silent_callers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CertDir::new(tmp.path());
    setup(&dir);
    let node = ReloadingTls::new(files(&dir, &dir.node(1).cert, &dir.node(1).key)).unwrap();
    let ops = Credentials::load(&files(
        &dir,
        &dir.client("ops").cert,
        &dir.client("ops").key,
    ))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut conns = Box::pin(accept(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        node.clone(),
        AcceptOptions::new(Duration::from_millis(300)),
    ));

    // A caller that connects and says nothing does not hold up the next one.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut client = connect(addr, &ops).await.unwrap();
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut server = tokio::time::timeout(Duration::from_secs(5), conns.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let who = server.peer().certificate.clone().unwrap();
    assert_eq!(
        server.peer().remote,
        Some(client.get_ref().0.local_addr().unwrap())
    );
    assert_eq!(
        who.identity,
        Some(Identity::Client {
            cluster: "c1".into(),
            name: "ops".into()
        })
    );
    assert_eq!(who.roles, vec![Role::Admin]);
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    // Both sides speak gRPC's HTTP/2.
    assert_eq!(server.tls().get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // The silent caller is closed once the handshake deadline passes.
    let mut one = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut one))
        .await
        .expect("the silent connection was left open");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");

    // A client of another CA never becomes a connection.
    let other = tempfile::tempdir().unwrap();
    let other_dir = CertDir::new(other.path());
    setup(&other_dir);
    let stranger = Credentials::load(&TlsFiles {
        ca: dir.ca().cert,
        cert: other_dir.client("ops").cert,
        key: other_dir.client("ops").key,
    })
    .unwrap();
    let _ = connect(addr, &stranger).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(800), conns.next())
            .await
            .is_err(),
        "a stranger's connection was accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_cas_change_under_a_running_server_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CertDir::new(tmp.path());
    let ca = setup(&dir);
    let node = ReloadingTls::new(files(&dir, &dir.node(1).cert, &dir.node(1).key)).unwrap();
    let first_serial = node.credentials().certificate().serial.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(tokio::sync::Mutex::new(Box::pin(accept(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        node.clone(),
        AcceptOptions::new(Duration::from_secs(2)),
    ))));
    let served_serial = |client: &tokio_rustls::client::TlsStream<TcpStream>| {
        let certs = client.get_ref().1.peer_certificates().unwrap();
        inspect_der("server", &certs[0]).unwrap().serial
    };
    let ops = Credentials::load(&files(
        &dir,
        &dir.client("ops").cert,
        &dir.client("ops").key,
    ))
    .unwrap();
    let held = connect(addr, &ops).await.unwrap();
    assert_eq!(served_serial(&held), first_serial);
    let _kept = conns.lock().await.next().await.unwrap().unwrap();

    // Renew the node's certificate in place: the next connection is served the new one.
    let renewed = ca.issue_node(1, &["localhost".into()], 30).unwrap();
    dir.write_pair(&dir.node(1), &renewed.cert_pem, &renewed.key_pem, true)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let client = connect(addr, &ops).await.unwrap();
    let second_serial = served_serial(&client);
    assert_ne!(second_serial, first_serial);
    let _ = conns.lock().await.next().await.unwrap().unwrap();

    // A broken file leaves the last good certificate in use.
    std::fs::write(&dir.node(1).cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let client = connect(addr, &ops).await.unwrap();
    assert_eq!(served_serial(&client), second_serial);
    assert_eq!(node.failed_reloads(), 1);
    let _ = conns.lock().await.next().await.unwrap().unwrap();
    dir.write_pair(&dir.node(1), &renewed.cert_pem, &renewed.key_pem, true)
        .unwrap();

    // Rolling the CA, step one: the bundle trusts the old and a new CA, so a client the new
    // CA issued gets in, and so does the old one.
    let new_ca = Authority::create("c1", 30).unwrap();
    let bundle = format!("{}{}", ca.cert_pem(), new_ca.cert_pem());
    std::fs::write(dir.ca().cert, &bundle).unwrap();
    let fresh = new_ca.issue_client("ops2", &[Role::Reader], 30).unwrap();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_dir = CertDir::new(fresh_dir.path());
    fresh_dir
        .write_pair(
            &fresh_dir.client("ops2"),
            &fresh.cert_pem,
            &fresh.key_pem,
            false,
        )
        .unwrap();
    std::fs::write(fresh_dir.ca().cert, &bundle).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh_creds = Credentials::load(&TlsFiles {
        ca: fresh_dir.ca().cert,
        cert: fresh_dir.client("ops2").cert,
        key: fresh_dir.client("ops2").key,
    })
    .unwrap();
    let _new_client = connect(addr, &fresh_creds).await.unwrap();
    let conn = conns.lock().await.next().await.unwrap().unwrap();
    let who = conn.peer().certificate.clone().unwrap();
    assert_eq!(
        who.identity,
        Some(Identity::Client {
            cluster: "c1".into(),
            name: "ops2".into()
        })
    );
    assert_eq!(node.credentials().authorities().len(), 2);
    // The connection opened before all this still works.
    drop(held);
}
