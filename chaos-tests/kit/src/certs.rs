//! Certificates for a cluster the kit runs on mutual TLS: a CA, one certificate per node (for
//! `localhost` and `127.0.0.1`) and one client holding every role, laid out as
//! `qastore certs` lays them out, so a node's `[tls] dir` points at them.

use std::path::Path;

use qastore_client::ClientTls;
use qastore_security::{Authority, CertDir, Role};

use crate::KitError;

/// The client the kit's own clients are: it holds every role.
pub const CLIENT: &str = "admin";
/// How long the kit's certificates last.
const DAYS: u32 = 365;

fn failed(what: &str) -> impl Fn(qastore_security::Error) -> KitError + '_ {
    move |e| KitError::Cluster(format!("{what}: {e}"))
}

/// Makes the CA of `cluster` in `dir`, certificates for `node_ids` and the client [`CLIENT`];
/// answers that client's TLS.
pub fn make(dir: &Path, cluster: &str, node_ids: &[u64]) -> Result<ClientTls, KitError> {
    let certs = CertDir::new(dir);
    let ca = Authority::create(cluster, DAYS).map_err(failed("making the CA"))?;
    certs
        .write_pair(&certs.ca(), ca.cert_pem(), ca.key_pem(), false)
        .map_err(failed("writing the CA"))?;
    for &id in node_ids {
        node(&certs, &ca, id)?;
    }
    let client = ca
        .issue_client(CLIENT, &Role::ALL, DAYS)
        .map_err(failed("issuing the client certificate"))?;
    let paths = certs.client(CLIENT);
    certs
        .write_pair(&paths, &client.cert_pem, &client.key_pem, false)
        .map_err(failed("writing the client certificate"))?;
    ClientTls::from_files(&certs.ca().cert, &paths.cert, &paths.key)
        .map_err(|e| KitError::Cluster(format!("loading the client certificate: {e}")))
}

/// A client config for the nodes' HTTP ports (HTTP/1.1 over TLS), presenting the kit's
/// client certificate.
pub fn https_config(dir: &Path) -> Result<std::sync::Arc<rustls::ClientConfig>, KitError> {
    let certs = CertDir::new(dir);
    let files = qastore_security::tls::TlsFiles {
        ca: certs.ca().cert,
        cert: certs.client(CLIENT).cert,
        key: certs.client(CLIENT).key,
    };
    qastore_security::tls::Credentials::load(&files)
        .and_then(|c| c.client_config_with(qastore_security::tls::Protocol::Http1))
        .map_err(|e| KitError::Cluster(format!("TLS for the HTTP ports: {e}")))
}

/// Issues node `id` a certificate from the CA in `dir` (for a node that joins later).
pub fn add_node(dir: &Path, id: u64) -> Result<(), KitError> {
    let certs = CertDir::new(dir);
    let pair = certs.ca();
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| KitError::at("reading", p, e));
    let ca = Authority::from_pem(&read(&pair.cert)?, &read(&pair.key)?)
        .map_err(failed("reading the CA"))?;
    node(&certs, &ca, id)
}

fn node(certs: &CertDir, ca: &Authority, id: u64) -> Result<(), KitError> {
    let issued = ca
        .issue_node(id, &["localhost".into(), "127.0.0.1".into()], DAYS)
        .map_err(failed("issuing a node certificate"))?;
    certs
        .write_pair(&certs.node(id), &issued.cert_pem, &issued.key_pem, false)
        .map_err(failed("writing a node certificate"))
}
