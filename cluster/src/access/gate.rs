//! The check every client call passes before it reaches a service: who is calling (the
//! certificate of its TLS connection) and whether that identity holds the role the method
//! needs ([`super::policy`]). A refused call never reaches the service, so it changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use qastore_security::tls::Peer;
use qastore_security::TokenKeyFile;
use qastore_security::{Identity, Role};
use tonic::codegen::http;
use tonic::Status;
use tower::Service;

use super::audit::RefusedCalls;
use super::policy::{need, Need};
use super::roles::RoleSource;
use super::scope::Scope;

/// Who made a call, as the services see it (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whom the certificate names (`None` on a node running without TLS).
    pub identity: Option<Identity>,
    /// Where the call came from.
    pub remote: Option<SocketAddr>,
    /// The data it may read (unlimited for nodes, certificates the access table does not
    /// scope, and nodes running without TLS).
    pub scope: Scope,
}

impl Caller {
    /// Who, in words, for the audit trail.
    pub fn who(&self) -> String {
        match &self.identity {
            Some(id) => id.to_string(),
            None => "an unauthenticated caller (TLS off)".into(),
        }
    }

    /// From where, in words.
    pub fn from(&self) -> String {
        self.remote.map(|a| a.to_string()).unwrap_or_default()
    }

    /// The scope of the caller of a request (unlimited when the request passed no gate:
    /// calls a node makes to itself).
    pub fn scope_of(extensions: &tonic::Extensions) -> (Scope, String) {
        match extensions.get::<Caller>() {
            Some(c) => (c.scope.clone(), c.who()),
            None => (Scope::default(), String::new()),
        }
    }
}

/// What the gate knows: the node's cluster, whether its port runs TLS, and where the roles of
/// each client come from.
pub struct Gate {
    cluster_id: String,
    node_id: u64,
    tls: bool,
    tokens: Option<Arc<TokenKeyFile>>,
    roles: Arc<dyn RoleSource>,
    refused: Arc<RefusedCalls>,
}

impl Gate {
    /// A gate for a node of `cluster_id`; `tls`: calls arrive over mutual TLS and are checked
    /// (without it every call is let through, as `--insecure` promises).
    pub fn new(
        cluster_id: &str,
        node_id: u64,
        tls: bool,
        roles: Arc<dyn RoleSource>,
        refused: Arc<RefusedCalls>,
    ) -> Gate {
        Gate {
            cluster_id: cluster_id.into(),
            node_id,
            tls,
            tokens: None,
            roles,
            refused,
        }
    }

    /// Whether callers may present a token instead of a certificate.
    pub fn takes_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Also lets in callers without a certificate that present a token `tokens` accepts.
    pub fn with_tokens(mut self, tokens: Arc<TokenKeyFile>) -> Gate {
        self.tokens = Some(tokens);
        self
    }

    /// Whom the call is from, and the roles that come with it: its certificate's, or else
    /// (on a node that accepts tokens) its bearer token's.
    fn identify(
        &self,
        method: &str,
        peer: Option<&Peer>,
        authorization: Option<&str>,
    ) -> Result<(Identity, Vec<Role>, Scope), Status> {
        if let Some(cert) = peer.and_then(|p| p.certificate.as_ref()) {
            let Some(identity) = cert.identity.clone() else {
                return Err(Status::unauthenticated(format!(
                    "{method}: the client certificate ({}) names no QAStore client",
                    cert.subject
                )));
            };
            return Ok((identity, cert.roles.clone(), Scope::default()));
        }
        let Some(tokens) = &self.tokens else {
            return Err(Status::unauthenticated(format!(
                "{method} needs a client certificate of cluster {}; the connection presented none",
                self.cluster_id
            )));
        };
        let Some(header) = authorization else {
            return Err(Status::unauthenticated(format!(
                "{method} needs a client certificate or a token (`authorization: Bearer <token>`) \
                 of cluster {}; the call presented neither",
                self.cluster_id
            )));
        };
        let Some(token) = header.strip_prefix("Bearer ") else {
            return Err(Status::unauthenticated(format!(
                "{method}: the authorization header is not `Bearer <token>`"
            )));
        };
        let holder = tokens
            .verify(token.trim())
            .map_err(|why| Status::unauthenticated(format!("{method}: {why}")))?;
        let scope = Scope {
            users: holder.users,
            instruments: holder.instruments,
        };
        Ok((holder.identity, holder.roles, scope))
    }

    /// Logs, counts and keeps a refused call.
    pub fn note_refused(&self, method: &str, peer: Option<&Peer>, status: &Status) {
        let from = peer
            .and_then(|p| p.remote)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let who = match peer.and_then(|p| p.certificate.as_ref()) {
            Some(cert) => cert
                .identity
                .as_ref()
                .map_or_else(|| cert.subject.clone(), |id| id.to_string()),
            None => "a caller without a certificate".into(),
        };
        tracing::warn!(
            method = %method,
            who = %who,
            from = %from,
            code = ?status.code(),
            reason = status.message(),
            "call refused"
        );
        metrics::counter!(
            "qastore_refused_calls_total",
            "method" => method.to_owned(),
            "code" => format!("{:?}", status.code())
        )
        .increment(1);
        self.refused.note(qastore_proto::v1::AuditEntry {
            index: 0,
            at_ns: super::table::now_ns(),
            who,
            remote: from,
            node_id: self.node_id,
            action: method
                .strip_prefix("/qastore.v1.")
                .unwrap_or(method)
                .to_owned(),
            detail: String::new(),
            result: super::audit::status_text(status),
        });
    }

    /// Lets the call to `path` from `peer` (with the `authorization` header, if any) through,
    /// or says why not.
    pub fn admit(
        &self,
        path: &str,
        peer: Option<&Peer>,
        authorization: Option<&str>,
    ) -> Result<Caller, Status> {
        let remote = peer.and_then(|p| p.remote);
        if !self.tls {
            return Ok(Caller {
                identity: None,
                remote,
                scope: Scope::default(),
            });
        }
        let method = path.strip_prefix("/qastore.v1.").unwrap_or(path);
        let (identity, presented_roles, presented_scope) =
            self.identify(method, peer, authorization)?;
        if identity.cluster() != self.cluster_id {
            return Err(Status::permission_denied(format!(
                "{method}: {identity} is not of this cluster ({})",
                self.cluster_id
            )));
        }
        let mut caller = Caller {
            identity: Some(identity.clone()),
            remote,
            scope: Scope::default(),
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
            Need::NodeOnly => {
                return Err(Status::permission_denied(format!(
                    "{method}: only the cluster's nodes may call this ({identity} is a client)"
                )))
            }
        };
        let presented_by = if peer.is_some_and(|p| p.certificate.is_some()) {
            "its certificate"
        } else {
            "its token"
        };
        let (held, scope, source) = match self.roles.grant_of(name) {
            Some(granted) => (granted.roles, granted.scope, "the cluster's access table"),
            None => (presented_roles, presented_scope, presented_by),
        };
        if held.contains(&role) {
            caller.scope = scope;
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
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match self.gate.admit(req.uri().path(), peer, authorization) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Either::Left(self.inner.call(req))
            }
            Err(status) => {
                self.gate.note_refused(req.uri().path(), peer, &status);
                Either::Right(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use qastore_security::{inspect_pem, Authority};
    use tonic::Code;

    use super::*;

    struct Table(BTreeMap<String, Vec<Role>>);

    impl RoleSource for Table {
        fn grant_of(&self, client: &str) -> Option<super::super::roles::Grant> {
            self.0.get(client).map(|roles| super::super::roles::Grant {
                roles: roles.clone(),
                scope: Scope::default(),
            })
        }
    }

    fn gate(tls: bool, table: &[(&str, &[Role])]) -> Gate {
        let table = table
            .iter()
            .map(|(c, r)| (c.to_string(), r.to_vec()))
            .collect();
        Gate::new(
            "c1",
            1,
            tls,
            Arc::new(Table(table)),
            Arc::new(RefusedCalls::default()),
        )
    }

    fn peer(cert_pem: &str) -> Peer {
        let cert = inspect_pem("test", cert_pem.as_bytes()).unwrap().remove(0);
        Peer {
            remote: Some("127.0.0.1:4000".parse().unwrap()),
            certificate: Some(Arc::new(cert)),
        }
    }

    fn client(ca: &Authority, name: &str, roles: &[Role]) -> Peer {
        peer(&ca.issue_client(name, roles, 1).unwrap().cert_pem)
    }

    const WRITE: &str = "/qastore.v1.Store/Write";
    const HALT: &str = "/qastore.v1.Admin/Halt";

    #[test]
    fn a_client_holding_the_role_passes_and_one_without_is_told_what_it_lacks() {
        let ca = Authority::create("c1", 30).unwrap();
        let g = gate(true, &[]);
        let writer = client(&ca, "feed", &[Role::Writer]);
        let caller = g.admit(WRITE, Some(&writer), None).unwrap();
        assert_eq!(caller.who(), "client feed of cluster c1");
        let reader = client(&ca, "quant", &[Role::Reader, Role::Subscriber]);
        let e = g.admit(WRITE, Some(&reader), None).unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert_eq!(
            e.message(),
            "Store/Write: client quant of cluster c1 lacks role writer \
             (holds reader, subscriber by its certificate)"
        );
        // Anyone of the cluster may find the leader.
        g.admit("/qastore.v1.Admin/ClusterStatus", Some(&reader), None)
            .unwrap();
    }

    #[test]
    fn the_access_table_replaces_the_certificate_roles() {
        let ca = Authority::create("c1", 30).unwrap();
        let g = gate(true, &[("feed", &[]), ("quant", &[Role::Admin])]);
        let e = g
            .admit(WRITE, Some(&client(&ca, "feed", &[Role::Writer])), None)
            .unwrap_err();
        assert!(
            e.message()
                .contains("holds none by the cluster's access table"),
            "{}",
            e.message()
        );
        g.admit(HALT, Some(&client(&ca, "quant", &[Role::Reader])), None)
            .unwrap();
    }

    #[test]
    fn nodes_pass_and_strangers_are_turned_away() {
        let ca = Authority::create("c1", 30).unwrap();
        let g = gate(true, &[]);
        let node = peer(&ca.issue_node(2, &["localhost".into()], 1).unwrap().cert_pem);
        g.admit(HALT, Some(&node), None).unwrap();
        g.admit("/qastore.v1.Admin/RecordAudit", Some(&node), None)
            .unwrap();
        let admin = client(&ca, "ops", &Role::ALL);
        let e = g
            .admit("/qastore.v1.Admin/RecordAudit", Some(&admin), None)
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);

        let other = Authority::create("c2", 30).unwrap();
        let e = g
            .admit(WRITE, Some(&client(&other, "feed", &[Role::Writer])), None)
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(
            e.message().contains("not of this cluster (c1)"),
            "{}",
            e.message()
        );

        let e = g.admit(WRITE, Some(&Peer::default()), None).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = g.admit(WRITE, None, None).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let ca_as_client = peer(ca.cert_pem());
        let e = g.admit(WRITE, Some(&ca_as_client), None).unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        let e = g
            .admit("/qastore.v1.Store/DropEverything", Some(&admin), None)
            .unwrap_err();
        assert!(e.message().contains("no role grants"), "{}", e.message());
    }

    #[test]
    fn without_tls_every_call_passes() {
        let g = gate(false, &[]);
        let caller = g.admit(HALT, None, None).unwrap();
        assert_eq!(caller.identity, None);
    }
}
