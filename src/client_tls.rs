//! Which certificate `ctl` and `bench` present: the files named by flags or environment
//! variables, or those of a certificate directory (`qastore certs` layout), or those a client
//! config file names (`--client-config`, only when no flag or variable names any), or, with
//! none of these, the demo's (its default directory, `qastore-demo/certs`, when it exists), so
//! that `qastore ctl status` works against a running demo as it is.

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
    /// and --key-file, or with a --token.
    #[arg(long, global = true, env = "QASTORE_CA_FILE")]
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
    /// A signed token (`qastore certs token`) instead of a client certificate; the CA comes
    /// from --ca-file or --cert-dir.
    #[arg(long, global = true, env = "QASTORE_TOKEN", hide_env_values = true, conflicts_with_all = ["cert_file", "key_file", "token_file"])]
    token: Option<String>,
    /// A file holding the token.
    #[arg(long, global = true, env = "QASTORE_TOKEN_FILE", conflicts_with_all = ["cert_file", "key_file"])]
    token_file: Option<PathBuf>,
    /// A TOML file naming the credentials (`ca_file`, `cert_file`, `key_file`, `cert_dir`,
    /// `client_name`, `token_file`), used when no flag or variable names any.
    #[arg(long, global = true, env = "QASTORE_CLIENT_CONFIG")]
    client_config: Option<PathBuf>,
}

/// What a client config file may hold: the same as the TLS flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    client_name: Option<String>,
    token_file: Option<PathBuf>,
}

/// What a command presents to a cluster: TLS material, and a token if it uses one.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The TLS material (`None`: plain connections).
    pub tls: Option<ClientTls>,
    /// The token, if any.
    pub token: Option<String>,
}

impl TlsArgs {
    /// Whether a flag or variable names any credential.
    fn names_any(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.cert_dir.is_some()
            || self.token.is_some()
            || self.token_file.is_some()
    }

    /// These arguments with the credentials `--client-config` names, when the flags and
    /// variables name none. Relative paths in the file are taken from the file's directory.
    fn with_client_file(&self) -> Result<TlsArgs, String> {
        let Some(path) = &self.client_config else {
            return Ok(self.clone());
        };
        if self.names_any() {
            return Ok(self.clone());
        }
        let what = || format!("--client-config {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", what()))?;
        let file: ClientFile =
            toml::from_str(&text).map_err(|e| format!("{}: {}", what(), e.message().trim()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let at = |p: Option<PathBuf>| p.map(|p| base.join(p));
        let merged = TlsArgs {
            ca_file: at(file.ca_file),
            cert_file: at(file.cert_file),
            key_file: at(file.key_file),
            cert_dir: at(file.cert_dir),
            client_name: file.client_name.unwrap_or_else(|| self.client_name.clone()),
            token: None,
            token_file: at(file.token_file),
            client_config: None,
        };
        if merged.cert_dir.is_some() && merged.ca_file.is_some() {
            return Err(format!("{}: give cert_dir or ca_file, not both", what()));
        }
        if merged.token_file.is_some() && (merged.cert_file.is_some() || merged.key_file.is_some())
        {
            return Err(format!(
                "{}: give token_file or cert_file and key_file, not both",
                what()
            ));
        }
        Ok(merged)
    }

    /// What to present; an error names the file or flag that could not be used.
    pub fn resolve(&self) -> Result<Presented, String> {
        self.with_client_file()?.resolve_given()
    }

    fn resolve_given(&self) -> Result<Presented, String> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("--token-file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(token) = token {
            let ca = match (&self.ca_file, &self.cert_dir) {
                (Some(ca), _) => ca.clone(),
                (None, Some(dir)) => CertDir::new(dir).ca().cert,
                (None, None) => CertDir::new(DEMO_CERTS).ca().cert,
            };
            let tls = ClientTls::ca_only(&ca).map_err(|e| format!("--ca-file: {e}"))?;
            return Ok(Presented {
                tls: Some(tls),
                token: Some(token),
            });
        }
        self.certificate().map(|tls| Presented { tls, token: None })
    }

    /// The certificate to present: `None` for plain connections (no files given and no demo
    /// certificates here).
    fn certificate(&self) -> Result<Option<ClientTls>, String> {
        match (&self.ca_file, &self.cert_file, &self.key_file) {
            (Some(ca), Some(cert), Some(key)) => return load(ca, cert, key).map(Some),
            (None, None, None) => {}
            _ => return Err(
                "give --ca-file, --cert-file and --key-file together (or --ca-file with a --token)"
                    .into(),
            ),
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
