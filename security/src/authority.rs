//! The cluster's certificate authority and the certificates it issues.
//!
//! One CA per cluster signs every node's and client's certificate; nodes and clients trust
//! that CA alone. Keys are ECDSA P-256 (fast to make and to verify, accepted by every TLS
//! stack). Each certificate carries its identity as a URI (see [`crate::names`]); a node's
//! also carries the host names and addresses it is reached at, and serves both sides of TLS
//! (it dials its peers as a client); a client's serves only the client side.

use std::net::IpAddr;
use std::str::FromStr;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::error::{invalid, Error, Result};
use crate::names::{check_name, role_uri, Identity, Role};

/// The longest lifetime this tool gives a certificate, in days (about 20 years).
pub const MAX_DAYS: u32 = 7300;

/// How far before now a certificate starts being valid, so that a peer whose clock is a little
/// behind does not refuse a certificate made a moment ago.
const BACKDATE: Duration = Duration::hours(1);

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<secret>")
            .finish()
    }
}

/// A cluster's certificate authority, able to issue certificates.
pub struct Authority {
    cluster: String,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A new CA for `cluster`, valid for `days` days.
    pub fn create(cluster: &str, days: u32) -> Result<Authority> {
        check_name("cluster id", cluster)?;
        let mut params = CertificateParams::default();
        set_lifetime(&mut params, days)?;
        params.distinguished_name = subject(&format!("QAStore CA {cluster}"), cluster);
        params.subject_alt_names = vec![uri(&Identity::Authority {
            cluster: cluster.into(),
        }
        .uri())?];
        // The CA signs leaf certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = new_key("the CA's key")?;
        let cert = params.self_signed(&key).map_err(|source| Error::Generate {
            what: "the CA certificate",
            source,
        })?;
        let key_pem = key.serialize_pem();
        Ok(Authority {
            cluster: cluster.into(),
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA stored as `cert_pem` and `key_pem` (what [`Authority::create`] made); its
    /// cluster is read from the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority> {
        let summaries = crate::inspect::inspect_pem("the CA certificate", cert_pem.as_bytes())?;
        let [summary] = summaries.as_slice() else {
            return Err(Error::Parse {
                what: "the CA certificate".into(),
                reason: format!("holds {} certificates, not one", summaries.len()),
            });
        };
        let cluster = match (&summary.identity, summary.is_ca) {
            (Some(Identity::Authority { cluster }), true) => cluster.clone(),
            _ => {
                return Err(Error::Parse {
                    what: "the CA certificate".into(),
                    reason: "is not a QAStore cluster CA (made by `qastore certs init`)".into(),
                })
            }
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::Parse {
            what: "the CA key".into(),
            reason: e.to_string(),
        })?;
        if key.public_key_raw() != summary.public_key.as_slice() {
            return Err(Error::Parse {
                what: "the CA key".into(),
                reason: "does not belong to the CA certificate".into(),
            });
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| Error::Parse {
            what: "the CA certificate".into(),
            reason: e.to_string(),
        })?;
        Ok(Authority {
            cluster,
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            issuer,
        })
    }

    /// The cluster this CA belongs to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA's certificate, PEM: what nodes and clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM: kept where only the operator who issues certificates can
    /// read it, never on a node.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A certificate for node `node_id`, valid for `days` days, for the host names and IP
    /// addresses in `hosts` (at least one; `localhost` and `127.0.0.1` for a single host).
    pub fn issue_node(&self, node_id: u64, hosts: &[String], days: u32) -> Result<Issued> {
        if node_id == 0 {
            return Err(invalid("node id", "must not be 0"));
        }
        if hosts.is_empty() {
            return Err(invalid(
                "host",
                "give at least one host name or IP address the node is reached at",
            ));
        }
        let identity = Identity::Node {
            cluster: self.cluster.clone(),
            node_id,
        };
        let mut params = self.leaf(&format!("node-{node_id}"), &identity, days)?;
        for host in hosts {
            params.subject_alt_names.push(host_name(host)?);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params, "the node certificate")
    }

    /// A certificate for the client `name` holding `roles` (at least one), valid for `days`
    /// days.
    pub fn issue_client(&self, name: &str, roles: &[Role], days: u32) -> Result<Issued> {
        let mut lifetime = CertificateParams::default();
        set_lifetime(&mut lifetime, days)?;
        self.issue_client_valid(name, roles, lifetime.not_before, lifetime.not_after)
    }

    /// A certificate for the client `name` valid from `not_before` to `not_after`, which may
    /// both lie in the past: for checking that expired or not yet valid certificates are
    /// refused.
    pub fn issue_client_valid(
        &self,
        name: &str,
        roles: &[Role],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued> {
        check_name("client name", name)?;
        if not_after <= not_before {
            return Err(invalid("days", "a certificate must end after it begins"));
        }
        if roles.is_empty() {
            return Err(invalid(
                "role",
                "give at least one role (writer, reader, subscriber or admin)",
            ));
        }
        let identity = Identity::Client {
            cluster: self.cluster.clone(),
            name: name.into(),
        };
        let mut params = self.leaf(name, &identity, 1)?;
        params.not_before = not_before;
        params.not_after = not_after;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        for role in roles {
            params
                .subject_alt_names
                .push(uri(&role_uri(&self.cluster, role))?);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, "the client certificate")
    }

    /// What every leaf certificate of this CA starts with: its lifetime, subject, identity
    /// URI, signing-only key usage and a pointer to the CA's key.
    fn leaf(&self, common_name: &str, identity: &Identity, days: u32) -> Result<CertificateParams> {
        let mut params = CertificateParams::default();
        set_lifetime(&mut params, days)?;
        params.distinguished_name = subject(common_name, &self.cluster);
        params.subject_alt_names = vec![uri(&identity.uri())?];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn sign(&self, params: CertificateParams, what: &'static str) -> Result<Issued> {
        let key = new_key(what)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Generate { what, source })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn new_key(what: &'static str) -> Result<KeyPair> {
    KeyPair::generate().map_err(|source| Error::Generate { what, source })
}

fn set_lifetime(params: &mut CertificateParams, days: u32) -> Result<()> {
    if days == 0 || days > MAX_DAYS {
        return Err(invalid(
            "days",
            format!("{days} is not a lifetime in days (1 to {MAX_DAYS})"),
        ));
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(days));
    Ok(())
}

fn subject(common_name: &str, cluster: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "QAStore");
    dn.push(DnType::OrganizationalUnitName, cluster);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn uri(text: &str) -> Result<SanType> {
    Ia5String::try_from(text.to_string())
        .map(SanType::URI)
        .map_err(|_| invalid("name", format!("{text:?} is not plain ASCII")))
}

/// A host name or IP address for a node's certificate.
fn host_name(host: &str) -> Result<SanType> {
    if let Ok(ip) = IpAddr::from_str(host) {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        });
    if !valid {
        return Err(invalid(
            "host",
            format!("{host:?} is neither an IP address nor a DNS name"),
        ));
    }
    Ia5String::try_from(host.to_string())
        .map(SanType::DnsName)
        .map_err(|_| invalid("host", format!("{host:?} is not plain ASCII")))
}
