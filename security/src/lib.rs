//! QAStore's certificates and identities.
//!
//! * [`Authority`]: a cluster's certificate authority, made once (`qastore certs init`), and
//!   the node and client certificates it issues (`qastore certs node`, `qastore certs client`).
//! * [`names`]: how a certificate names a node or a client of a cluster, and a client's
//!   [`Role`]s, as URIs in its subject alternative names.
//! * [`inspect_pem`]: what a certificate says ([`CertSummary`]), for `qastore certs show` and
//!   for telling who is calling.
//! * [`CertDir`]: where the files live, written crash-atomically, keys private.
//! * [`token`]: signed tokens (JWT, ES256) for clients that cannot hold a certificate;
//!   [`TokenKeyFile`] follows a node's token key file so the key can be rolled.
//! * [`tls`]: mutual TLS configs from those files, re-read when they change, and a TLS
//!   acceptor for a node's ports with a handshake deadline; [`dial`] for a peer connection
//!   outside gRPC.

mod accepted;
mod authority;
mod dial;
mod error;
mod files;
mod inspect;
mod limits;
pub mod names;
pub mod tls;
pub mod token;
mod token_keys;

pub use authority::{Authority, Issued, MAX_DAYS};
pub use dial::{dial, Dialed};
pub use error::{Error, Result};
pub use files::{read_pem, CertDir, PairPaths};
pub use inspect::{inspect_der, inspect_pem, CertSummary};
pub use limits::{ConnectionLimiter, ConnectionSlot};
pub use names::{Identity, Role};
pub use token_keys::TokenKeyFile;
