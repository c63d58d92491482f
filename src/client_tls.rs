//! Which certificate `ctl` and `bench` present: the files named by flags or environment
//! variables, or those of a certificate directory (`qastore certs` layout), or, with none of
//! these, the demo's (its default directory, `qastore-demo/certs`, when it exists), so that
//! `qastore ctl status` works against a running demo as it is.

use std::path::{Path, PathBuf};

use clap::Args;
use qastore_client::ClientTls;
use qastore_security::CertDir;

/// The demo's default directory, relative to the working directory.
pub const DEMO_DIR: &str = "qastore-demo";
/// Where the demo keeps its certificates, relative to the working directory.
pub const DEMO_CERTS: &str = "qastore-demo/certs";
/// The client the demo issues for operators: it holds every role.
pub const DEMO_CLIENT: &str = "admin";

/// The TLS flags of a command that talks to a cluster.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// For a cluster running mutual TLS: the CA certificates to trust (PEM), with --cert-file
    /// and --key-file.
    #[arg(long, global = true, env = "QASTORE_CA_FILE", requires_all = ["cert_file", "key_file"])]
    ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), from `qastore certs client`.
    #[arg(long, global = true, env = "QASTORE_CERT_FILE", requires_all = ["ca_file", "key_file"])]
    cert_file: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long, global = true, env = "QASTORE_KEY_FILE", requires_all = ["ca_file", "cert_file"])]
    key_file: Option<PathBuf>,
    /// Instead of the three files: a certificate directory as `qastore certs` writes it
    /// (ca.pem, client-<NAME>.pem, client-<NAME>.key). Default: the demo's, when present.
    #[arg(
        long,
        global = true,
        env = "QASTORE_CERT_DIR",
        conflicts_with = "ca_file"
    )]
    cert_dir: Option<PathBuf>,
    /// The client whose certificate to take from --cert-dir.
    #[arg(long, global = true, env = "QASTORE_CLIENT", default_value = DEMO_CLIENT)]
    client_name: String,
}

impl TlsArgs {
    /// What to present: `None` for plain connections (no files given and no demo
    /// certificates here); an error names the file that could not be used.
    pub fn resolve(&self) -> Result<Option<ClientTls>, String> {
        if let (Some(ca), Some(cert), Some(key)) = (&self.ca_file, &self.cert_file, &self.key_file)
        {
            return load(ca, cert, key).map(Some);
        }
        let (dir, given) = match &self.cert_dir {
            Some(d) => (d.clone(), true),
            None => (PathBuf::from(DEMO_CERTS), false),
        };
        let certs = CertDir::new(&dir);
        let client = certs.client(&self.client_name);
        let ca = certs.ca().cert;
        let found = ca.exists() && client.cert.exists() && client.key.exists();
        if !given && !found {
            return Ok(None);
        }
        load(&ca, &client.cert, &client.key)
            .map(Some)
            .map_err(|e| format!("--cert-dir {}: {e}", dir.display()))
    }
}

fn load(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, String> {
    ClientTls::from_files(ca, cert, key).map_err(|e| e.to_string())
}
