//! Signed tokens for clients that cannot hold a certificate: a JWT (ES256) naming a client of
//! a cluster and its roles, signed with the cluster's token key. Every node verifies tokens
//! with the key's public half, so a token is good on every node and across membership changes
//! until it expires; there is no token state on the nodes to lose or replicate.
//!
//! ```text
//! header  {"alg":"ES256","typ":"JWT"}
//! claims  {"iss":"qastore://<cluster>", "sub":"qastore://<cluster>/client/<name>",
//!          "roles":["reader"], "iat":..., "nbf":..., "exp":..., "jti":"<random>"}
//! ```

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::names::{check_name, parse_uri, NameUri};
use crate::{Identity, Role, MAX_DAYS};

/// How far a node's clock may be from the issuer's.
const LEEWAY_SECS: u64 = 60;
/// How many verified tokens a verifier remembers (verifying costs a signature check).
const CACHED: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    instruments: Vec<String>,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

fn issuer(cluster: &str) -> String {
    format!("qastore://{cluster}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new token key pair: the signing key (PKCS#8 PEM, stays with the operator) and its public
/// half (SPKI PEM, given to every node).
pub fn new_token_key() -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|source| Error::Generate {
        what: "the token key",
        source,
    })?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Signs tokens for the clients of one cluster.
pub struct TokenIssuer {
    cluster: String,
    key: EncodingKey,
}

impl TokenIssuer {
    /// An issuer for `cluster` with the signing key `key_pem` (from [`new_token_key`]).
    pub fn new(cluster: &str, key_pem: &str) -> Result<TokenIssuer> {
        check_name("cluster id", cluster)?;
        let key = EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(|e| Error::Parse {
            what: "the token signing key".into(),
            reason: e.to_string(),
        })?;
        Ok(TokenIssuer {
            cluster: cluster.into(),
            key,
        })
    }

    /// A token for client `name` holding `roles` (at least one), valid for `days` days from
    /// now (up to [`MAX_DAYS`]; a minute earlier, for clock skew).
    pub fn issue(&self, name: &str, roles: &[Role], days: u32) -> Result<String> {
        self.issue_scoped(name, roles, &[], &[], days)
    }

    /// A token as [`TokenIssuer::issue`] makes, whose holder may read only the data of
    /// `users` and `instruments` (ids, or prefixes ending in `*`; each empty: any).
    pub fn issue_scoped(
        &self,
        name: &str,
        roles: &[Role],
        users: &[String],
        instruments: &[String],
        days: u32,
    ) -> Result<String> {
        if days == 0 || days > MAX_DAYS {
            return Err(invalid(
                "days",
                format!("{days} is not a lifetime in days (1 to {MAX_DAYS})"),
            ));
        }
        self.sign(
            name,
            roles,
            (users, instruments),
            now_secs(),
            u64::from(days) * 86_400,
        )
    }

    /// A token valid from `not_before` (epoch seconds) for `secs` seconds, which may lie in
    /// the past: for checking that expired tokens are refused.
    pub fn issue_valid(
        &self,
        name: &str,
        roles: &[Role],
        not_before: u64,
        secs: u64,
    ) -> Result<String> {
        self.sign(name, roles, (&[], &[]), not_before, secs)
    }

    fn sign(
        &self,
        name: &str,
        roles: &[Role],
        (users, instruments): (&[String], &[String]),
        not_before: u64,
        secs: u64,
    ) -> Result<String> {
        check_name("client name", name)?;
        for (field, names) in [("user", users), ("instrument", instruments)] {
            if names.iter().any(|n| n.is_empty() || n.len() > 64) {
                return Err(invalid(field, "a name is 1 to 64 bytes"));
            }
        }
        if roles.is_empty() {
            return Err(invalid(
                "role",
                "give at least one role (writer, reader, subscriber or admin)",
            ));
        }
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let identity = Identity::Client {
            cluster: self.cluster.clone(),
            name: name.into(),
        };
        let claims = Claims {
            iss: issuer(&self.cluster),
            sub: identity.uri(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            users: users.to_vec(),
            instruments: instruments.to_vec(),
            iat: now_secs(),
            nbf: not_before.saturating_sub(LEEWAY_SECS),
            exp: not_before + secs,
            jti: format!("{:016x}", rand_id()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key).map_err(|e| {
            Error::Parse {
                what: "signing the token".into(),
                reason: e.to_string(),
            }
        })
    }
}

fn rand_id() -> u64 {
    let mut bytes = [0u8; 8];
    // A token id only needs to be unique, not secret; the clock is the fallback.
    if getrandom(&mut bytes).is_err() {
        return now_secs() ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

fn getrandom(buf: &mut [u8]) -> std::result::Result<(), rustls::crypto::GetRandomFailed> {
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
}

/// Whom a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    /// The client.
    pub identity: Identity,
    /// Its roles (names this version does not know are left out).
    pub roles: Vec<Role>,
    /// The users whose data it may read (empty: any).
    pub users: Vec<String>,
    /// The instruments whose data it may read (empty: any).
    pub instruments: Vec<String>,
    /// When the token expires (epoch seconds).
    pub expires_at: u64,
}

/// Checks tokens for one cluster against the public halves of its token keys (one, or two
/// while the key is being rolled), remembering the tokens it verified until they expire.
pub struct TokenVerifier {
    cluster: String,
    keys: Vec<DecodingKey>,
    validation: Validation,
    verified: Mutex<HashMap<String, TokenHolder>>,
}

/// The public keys in `public_pem`: one PEM block or several.
fn public_keys(public_pem: &str) -> Result<Vec<DecodingKey>> {
    let bad = |reason: String| Error::Parse {
        what: "the token public key".into(),
        reason,
    };
    let blocks = pem::parse_many(public_pem).map_err(|e| bad(e.to_string()))?;
    if blocks.is_empty() {
        return Err(bad("no PEM block in it".into()));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(i, block)| {
            DecodingKey::from_ec_pem(pem::encode(block).as_bytes())
                .map_err(|e| bad(format!("key {} of {}: {e}", i + 1, blocks.len())))
        })
        .collect()
}

impl TokenVerifier {
    /// A verifier for `cluster` with the public key or keys in `public_pem` (a token signed
    /// with any of them is good: how a token key is rolled without a gap).
    pub fn new(cluster: &str, public_pem: &str) -> Result<TokenVerifier> {
        let keys = public_keys(public_pem)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer(cluster)]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        Ok(TokenVerifier {
            cluster: cluster.into(),
            keys,
            validation,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// How many public keys it accepts tokens of.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The token's claims, checked against each key in turn until one signed it.
    fn decode(&self, token: &str) -> jsonwebtoken::errors::Result<Claims> {
        let mut last = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| jsonwebtoken::errors::ErrorKind::InvalidSignature.into()))
    }

    /// Whom `token` names, or why it is refused (in words for the caller).
    pub fn verify(&self, token: &str) -> std::result::Result<TokenHolder, String> {
        let now = now_secs();
        if let Some(holder) = self.verified.lock().get(token) {
            if holder.expires_at + LEEWAY_SECS > now {
                return Ok(holder.clone());
            }
        }
        let claims = self.decode(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token expired".to_string(),
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                "the token is not valid yet".to_string()
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "the token is not signed with this cluster's token key".to_string()
            }
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => format!(
                "the token was issued for another cluster (not {})",
                self.cluster
            ),
            other => format!("the token is not valid ({other:?})"),
        })?;
        let identity = match parse_uri(&claims.sub) {
            Ok(Some(NameUri::Identity(id @ Identity::Client { .. })))
                if id.cluster() == self.cluster =>
            {
                id
            }
            _ => {
                return Err(format!(
                    "the token's subject {:?} is not a client of this cluster",
                    claims.sub
                ))
            }
        };
        let holder = TokenHolder {
            identity,
            roles: claims.roles.iter().filter_map(|r| r.parse().ok()).collect(),
            users: claims.users,
            instruments: claims.instruments,
            expires_at: claims.exp,
        };
        let mut verified = self.verified.lock();
        if verified.len() >= CACHED {
            verified.retain(|_, h| h.expires_at + LEEWAY_SECS > now);
            if verified.len() >= CACHED {
                verified.clear();
            }
        }
        verified.insert(token.to_string(), holder.clone());
        Ok(holder)
    }
}
