//! Reading what a certificate says: whom it names, its roles, the names it serves and how long
//! it is valid. Used by `qastore certs show`, by the CA to check its own files, and by nodes to
//! learn who is calling.

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::X509Certificate;

use crate::error::{Error, Result};
use crate::names::{parse_uri, Identity, NameUri, Role};

/// What one certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject, as `O=..., OU=..., CN=...`.
    pub subject: String,
    /// The issuer, likewise.
    pub issuer: String,
    /// The serial number, hex.
    pub serial: String,
    /// Whether it may sign other certificates.
    pub is_ca: bool,
    /// Whom it names, if it is a QAStore certificate.
    pub identity: Option<Identity>,
    /// The roles it grants (a client's), in a fixed order.
    pub roles: Vec<Role>,
    /// The DNS names it serves.
    pub dns_names: Vec<String>,
    /// The IP addresses it serves.
    pub ip_addresses: Vec<IpAddr>,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
    /// The subject's public key (the bits of its SubjectPublicKeyInfo).
    pub public_key: Vec<u8>,
}

impl CertSummary {
    /// Whole days from `now` until the certificate expires (negative once it has).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }
}

/// Every certificate in the PEM text `pem` (a single certificate or a bundle), in order;
/// `what` names the input in errors. Blocks that are not certificates (a key) are refused, so
/// that a key given where a certificate belongs is noticed.
pub fn inspect_pem(what: &str, pem: &[u8]) -> Result<Vec<CertSummary>> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| parse_error(what, format!("not PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(parse_error(
                what,
                format!("holds a {} where a certificate belongs", block.label),
            ));
        }
        out.push(inspect_der(what, &block.contents)?);
    }
    if out.is_empty() {
        return Err(parse_error(what, "holds no PEM certificate"));
    }
    Ok(out)
}

/// The certificate `der` (DER bytes); `what` names it in errors.
pub fn inspect_der(what: &str, der: &[u8]) -> Result<CertSummary> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| parse_error(what, format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(parse_error(
            what,
            format!("{} bytes follow the certificate", rest.len()),
        ));
    }
    summarize(what, &cert)
}

fn summarize(what: &str, cert: &X509Certificate<'_>) -> Result<CertSummary> {
    let mut identity = None;
    let mut roles = Vec::new();
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| parse_error(what, format!("subject alternative names: {e}")))?;
    for name in sans.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::URI(uri) => match parse_uri(uri)? {
                Some(NameUri::Identity(id)) if identity.is_some() => {
                    return Err(parse_error(
                        what,
                        format!("names more than one identity ({id} too)"),
                    ));
                }
                Some(NameUri::Identity(id)) => identity = Some(id),
                Some(NameUri::Role { cluster, role }) => roles.push((cluster, role)),
                None => {}
            },
            GeneralName::DNSName(name) => dns_names.push((*name).to_string()),
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_from_bytes(bytes) {
                    ip_addresses.push(ip);
                }
            }
            _ => {}
        }
    }
    // A role counts only in the cluster of the identity that holds it.
    let cluster = identity
        .as_ref()
        .map(|id: &Identity| id.cluster().to_string());
    let mut roles: Vec<Role> = roles
        .into_iter()
        .filter(|(c, _)| Some(c) == cluster.as_ref())
        .map(|(_, r)| r)
        .collect();
    roles.sort();
    roles.dedup();
    let validity = cert.validity();
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        is_ca: cert.is_ca(),
        identity,
        roles,
        dns_names,
        ip_addresses,
        not_before: time_of(what, validity.not_before.timestamp())?,
        not_after: time_of(what, validity.not_after.timestamp())?,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn time_of(what: &str, unix: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| parse_error(what, format!("validity time: {e}")))
}

fn parse_error(what: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        what: what.into(),
        reason: reason.into(),
    }
}
