//! The check every client call passes before it reaches a service: who is calling (the
//! certificate of its TLS connection) and whether that identity holds the role the method
//! needs ([`super::policy`]). A refused call never reaches the service, so it changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use qastore_security::tls::Peer;
use qastore_security::{Identity, Role};
use tonic::codegen::http;
use tonic::Status;
use tower::Service;

use super::policy::{need, Need};
use super::roles::RoleSource;

/// Who made a call, as the services see it (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whom the certificate names (`None` on a node running without TLS).
    pub identity: Option<Identity>,
    /// Where the call came from.
    pub remote: Option<SocketAddr>,
}

impl Caller {
    /// The caller in words, for logs and the audit trail.
    pub fn describe(&self) -> String {
        match (&self.identity, self.remote) {
            (Some(id), Some(addr)) => format!("{id} at {addr}"),
            (Some(id), None) => id.to_string(),
            (None, Some(addr)) => format!("an unauthenticated caller at {addr}"),
            (None, None) => "an unauthenticated caller".into(),
        }
    }
}

/// What the gate knows: the node's cluster, whether its port runs TLS, and where the roles of
/// each client come from.
pub struct Gate {
    cluster_id: String,
    tls: bool,
    roles: Arc<dyn RoleSource>,
}

impl Gate {
    /// A gate for a node of `cluster_id`; `tls`: calls arrive over mutual TLS and are checked
    /// (without it every call is let through, as `--insecure` promises).
    pub fn new(cluster_id: &str, tls: bool, roles: Arc<dyn RoleSource>) -> Gate {
        Gate {
            cluster_id: cluster_id.into(),
            tls,
            roles,
        }
    }

    /// Lets the call to `path` from `peer` through, or says why not.
    pub fn admit(&self, path: &str, peer: Option<&Peer>) -> Result<Caller, Status> {
        let remote = peer.and_then(|p| p.remote);
        if !self.tls {
            return Ok(Caller {
                identity: None,
                remote,
            });
        }
        let method = path.strip_prefix("/qastore.v1.").unwrap_or(path);
        let Some(cert) = peer.and_then(|p| p.certificate.as_ref()) else {
            return Err(Status::unauthenticated(format!(
                "{method} needs a client certificate of cluster {}; the connection presented none",
                self.cluster_id
            )));
        };
        let Some(identity) = cert.identity.clone() else {
            return Err(Status::unauthenticated(format!(
                "{method}: the client certificate ({}) names no QAStore client",
                cert.subject
            )));
        };
        if identity.cluster() != self.cluster_id {
            return Err(Status::permission_denied(format!(
                "{method}: {identity} is not of this cluster ({})",
                self.cluster_id
            )));
        }
        let caller = Caller {
            identity: Some(identity.clone()),
            remote,
        };
        let Some(need) = need(path) else {
            return Err(Status::permission_denied(format!(
                "{method}: no role grants this method (called by {identity})"
            )));
        };
        let name = match &identity {
            // Nodes forward writes and ask each other for status: they may call anything.
            Identity::Node { .. } => return Ok(caller),
            Identity::Client { name, .. } => name,
            Identity::Authority { .. } => {
                return Err(Status::permission_denied(format!(
                    "{method}: a CA certificate is not a client's"
                )))
            }
        };
        let role = match need {
            Need::AnyIdentity => return Ok(caller),
            Need::Role(role) => role,
        };
        let (held, source) = match self.roles.roles_of(name) {
            Some(granted) => (granted, "the cluster's access table"),
            None => (cert.roles.clone(), "its certificate"),
        };
        if held.contains(&role) {
            return Ok(caller);
        }
        Err(Status::permission_denied(format!(
            "{method}: {identity} lacks role {role} (holds {} by {source})",
            list(&held)
        )))
    }
}

fn list(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "none".into();
    }
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The gate as a layer around the gRPC services.
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Gated<S> {
    /// Checks calls before `inner` sees them.
    pub fn new(inner: S, gate: Arc<Gate>) -> Self {
        Gated { inner, gate }
    }
}

impl<S, B> Service<http::Request<B>> for Gated<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let peer = Peer::of(&req);
        match self.gate.admit(req.uri().path(), peer) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Either::Left(self.inner.call(req))
            }
            Err(status) => {
                let method = req.uri().path().to_string();
                let from = peer
                    .and_then(|p| p.remote)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                tracing::warn!(
                    method = %method,
                    from = %from,
                    code = ?status.code(),
                    reason = status.message(),
                    "call refused"
                );
                metrics::counter!(
                    "qastore_refused_calls_total",
                    "method" => method,
                    "code" => format!("{:?}", status.code())
                )
                .increment(1);
                Either::Right(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}
