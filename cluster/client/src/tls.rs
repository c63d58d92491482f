//! A client's mutual TLS material: the CA bundle it trusts and the certificate and key it
//! presents (made by `qastore certs client`).

use std::path::Path;

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
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads the three files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, ClientError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| ClientError::BadTls(format!("{}: {e}", p.display())))
        };
        Ok(ClientTls {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// tonic's TLS settings for a channel.
    pub(crate) fn config(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
    }
}
