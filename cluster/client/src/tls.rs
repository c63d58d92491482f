//! A client's mutual TLS material: the CA bundle it trusts and the certificate and key it
//! presents (made by `qastore certs client`), re-read when the files it came from change.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::ClientError;

/// What a client needs to talk to a cluster that runs mutual TLS, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// The trusted CA certificates.
    pub ca_pem: Vec<u8>,
    /// The client's certificate.
    pub cert_pem: Vec<u8>,
    /// The client's private key.
    pub key_pem: Vec<u8>,
    /// The files the material was read from: when they change, the client reads them again
    /// and makes its connections anew with what they hold (`None`: the material is fixed).
    pub files: Option<ClientTlsFiles>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Where a client's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The CA bundle.
    pub ca: PathBuf,
    /// The client's certificate.
    pub cert: PathBuf,
    /// The client's key.
    pub key: PathBuf,
}

/// What identifies one version of the files: each one's length and modification time.
pub(crate) type Stamp = Vec<Option<(u64, SystemTime)>>;

impl ClientTlsFiles {
    /// The files' current stamp.
    pub(crate) fn stamp(&self) -> Stamp {
        [&self.ca, &self.cert, &self.key]
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.len(), m.modified().ok()?)))
            })
            .collect()
    }
}

impl ClientTls {
    /// Reads the three files (and reads them again whenever they change).
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, ClientError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| ClientError::BadTls(format!("{}: {e}", p.display())))
        };
        Ok(ClientTls {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            files: Some(ClientTlsFiles {
                ca: ca.to_path_buf(),
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }),
        })
    }

    /// The CA bundle alone, for a client that proves who it is with a token rather than a
    /// certificate (re-read when the file changes).
    pub fn ca_only(ca: &Path) -> Result<ClientTls, ClientError> {
        let ca_pem =
            std::fs::read(ca).map_err(|e| ClientError::BadTls(format!("{}: {e}", ca.display())))?;
        Ok(ClientTls {
            ca_pem,
            cert_pem: Vec::new(),
            key_pem: Vec::new(),
            files: None,
        })
    }

    /// tonic's TLS settings for a channel (presenting no certificate when it holds none).
    pub(crate) fn config(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem));
        if self.cert_pem.is_empty() {
            return config;
        }
        config.identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}
