//! The `[tls]` section of `node.toml`: the files that turn on mutual TLS for the node's client
//! API and peer ports and for its calls to other nodes. Without it the node speaks plain gRPC.

use std::path::PathBuf;

use qastore_security::tls::TlsFiles;
use qastore_security::CertDir;
use serde::Deserialize;

use super::ConfigError;

/// TLS settings: a certificate directory as `qastore certs` lays it out, or each file by
/// name (a file named overrides the directory's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// A directory holding `ca.pem`, `node-<node_id>.pem` and `node-<node_id>.key`.
    pub dir: Option<PathBuf>,
    /// The trusted CA certificates (PEM; several while a CA is rolled).
    pub ca_file: Option<PathBuf>,
    /// This node's certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// This node's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// How long a caller has to finish its TLS handshake, in milliseconds (default 5000).
    pub handshake_timeout_ms: Option<u64>,
    /// The public half of the cluster's token key (`token.pub`, from `qastore certs
    /// token-key`): clients may then connect without a certificate and present a signed token
    /// instead. Read when the node starts.
    pub token_key_file: Option<PathBuf>,
}

impl TlsSection {
    /// The files of node `node_id`, or `None` when TLS is off.
    pub fn files(&self, node_id: u64) -> Option<TlsFiles> {
        let dir = self.dir.as_ref().map(CertDir::new);
        let pick = |named: &Option<PathBuf>, from_dir: fn(&CertDir, u64) -> PathBuf| {
            named
                .clone()
                .or_else(|| dir.as_ref().map(|d| from_dir(d, node_id)))
        };
        Some(TlsFiles {
            ca: pick(&self.ca_file, |d, _| d.ca().cert)?,
            cert: pick(&self.cert_file, |d, id| d.node(id).cert)?,
            key: pick(&self.key_file, |d, id| d.node(id).key)?,
        })
    }

    /// How long a handshake may take.
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.handshake_timeout_ms.unwrap_or(5000))
    }

    /// Checks that the files are all given (by directory or by name) or none are.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let named = [&self.ca_file, &self.cert_file, &self.key_file];
        let any = self.dir.is_some() || named.iter().any(|f| f.is_some());
        if any && self.dir.is_none() && named.iter().any(|f| f.is_none()) {
            return Err(ConfigError::Invalid {
                field: "tls",
                reason: "give `dir`, or all of `ca_file`, `cert_file` and `key_file`".into(),
            });
        }
        if self.handshake_timeout_ms == Some(0) {
            return Err(ConfigError::Invalid {
                field: "tls.handshake_timeout_ms",
                reason: "must be above zero".into(),
            });
        }
        if self.token_key_file.is_some() && !any {
            return Err(ConfigError::Invalid {
                field: "tls.token_key_file",
                reason: "tokens travel only over TLS: give the certificate files too".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_come_from_a_directory_or_by_name_and_never_half_given() {
        let off = TlsSection::default();
        assert!(off.validate().is_ok());
        assert_eq!(off.files(1), None);

        let dir = TlsSection {
            dir: Some("/etc/qastore/certs".into()),
            key_file: Some("/secrets/node-2.key".into()),
            ..TlsSection::default()
        };
        assert!(dir.validate().is_ok());
        let files = dir.files(2).unwrap();
        assert_eq!(files.ca, PathBuf::from("/etc/qastore/certs/ca.pem"));
        assert_eq!(files.cert, PathBuf::from("/etc/qastore/certs/node-2.pem"));
        assert_eq!(files.key, PathBuf::from("/secrets/node-2.key"));

        let half = TlsSection {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("node.pem".into()),
            ..TlsSection::default()
        };
        let e = half.validate().unwrap_err().to_string();
        assert!(e.contains("tls") && e.contains("key_file"), "{e}");
        let zero = TlsSection {
            dir: Some("d".into()),
            handshake_timeout_ms: Some(0),
            ..TlsSection::default()
        };
        assert!(zero.validate().is_err());
    }
}
