//! TLS for a node's ports and for its clients, built from PEM files that are re-read when they
//! change, so certificates and the CA bundle rotate without a restart.
//!
//! Every connection is mutual TLS 1.2 or 1.3 (rustls, ring provider): the server asks for a
//! client certificate and refuses a connection without one that chains to the trusted CAs, and
//! the client checks the server's against the same CAs and the name it dialled. A node holds
//! one set of files (its CA bundle, certificate and key) for both sides: it serves its peers and
//! clients and dials its peers with the same identity.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use tonic::transport::server::{Connected, TcpConnectInfo};

pub use crate::accepted::{caller, Accepted, Peer};
use crate::error::{io, Error, Result};
use crate::inspect::{inspect_pem, CertSummary};
use crate::limits::ConnectionLimiter;

/// The protocol spoken inside TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC's HTTP/2 (the client API and peer ports).
    H2,
    /// HTTP/1.1 (the HTTP port: metrics, health, JSON admin routes).
    Http1,
}

impl Protocol {
    fn alpn(self) -> Vec<u8> {
        match self {
            Protocol::H2 => b"h2".to_vec(),
            Protocol::Http1 => b"http/1.1".to_vec(),
        }
    }
}

/// How often, at most, a reloading config looks at its files.
const RECHECK: Duration = Duration::from_secs(1);

/// How [`accept`] takes connections.
#[derive(Debug, Clone)]
pub struct AcceptOptions {
    /// How long a caller has to finish its handshake.
    pub handshake_timeout: Duration,
    /// Whether callers must present a certificate.
    pub client_certs: ClientCerts,
    /// The most connections one caller may hold open (`None`: no limit).
    pub limiter: Option<Arc<ConnectionLimiter>>,
    /// The protocol spoken inside TLS.
    pub protocol: Protocol,
}

impl AcceptOptions {
    /// Certificates required, no connection limit.
    pub fn new(handshake_timeout: Duration) -> AcceptOptions {
        AcceptOptions {
            handshake_timeout,
            client_certs: ClientCerts::Required,
            limiter: None,
            protocol: Protocol::H2,
        }
    }
}

/// Whether a server requires its callers to present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    /// Every caller presents one (the peer port; the client API port without tokens).
    Required,
    /// A caller may present none and prove who it is with a token instead (the client API
    /// port of a node that accepts tokens).
    Optional,
}

/// Where a node's or client's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The trusted CA certificates (one, or several while a CA is being rolled).
    pub ca: PathBuf,
    /// This side's certificate (and any intermediates after it).
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    fn paths(&self) -> [&Path; 3] {
        [&self.ca, &self.cert, &self.key]
    }
}

/// TLS material read and checked: the trusted CAs, this side's certificate chain and key.
pub struct Credentials {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    leaf: CertSummary,
    cas: Vec<CertSummary>,
    pem: [Vec<u8>; 3],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("leaf", &self.leaf.identity)
            .field("cas", &self.cas.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads `files`, checking that each holds what it should and that the key belongs to the
    /// certificate.
    pub fn load(files: &TlsFiles) -> Result<Credentials> {
        let ca_pem = std::fs::read(&files.ca).map_err(io(&files.ca))?;
        let cert_pem = std::fs::read(&files.cert).map_err(io(&files.cert))?;
        let key_pem = std::fs::read(&files.key).map_err(io(&files.key))?;
        Credentials::from_pem(
            &ca_pem,
            &cert_pem,
            &key_pem,
            &files.cert.display().to_string(),
        )
    }

    /// The same from PEM text; `what` names the certificate in errors.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        what: &str,
    ) -> Result<Credentials> {
        let cas = inspect_pem("the CA bundle", ca_pem)?;
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_pem) {
            let der = der.map_err(|e| parse("the CA bundle", e.to_string()))?;
            roots
                .add(der)
                .map_err(|e| parse("the CA bundle", e.to_string()))?;
        }
        let leaf = inspect_pem(what, cert_pem)?.remove(0);
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| parse(what, e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| parse("the private key", e.to_string()))?;
        let key_text = std::str::from_utf8(key_pem)
            .map_err(|_| parse("the private key", "is not PEM text".into()))?;
        let pair = rcgen::KeyPair::from_pem(key_text)
            .map_err(|e| parse("the private key", e.to_string()))?;
        if pair.public_key_raw() != leaf.public_key.as_slice() {
            return Err(parse(
                "the private key",
                format!("does not belong to the certificate in {what}"),
            ));
        }
        Ok(Credentials {
            roots: Arc::new(roots),
            chain,
            key,
            leaf,
            cas,
            pem: [ca_pem.to_vec(), cert_pem.to_vec(), key_pem.to_vec()],
        })
    }

    /// What this side's certificate says.
    pub fn certificate(&self) -> &CertSummary {
        &self.leaf
    }

    /// What the trusted CA certificates say.
    pub fn authorities(&self) -> &[CertSummary] {
        &self.cas
    }

    /// A server config: this certificate, and a client certificate required, chaining to the
    /// trusted CAs.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        self.server_config_with(ClientCerts::Required, Protocol::H2)
    }

    /// A server config speaking `protocol` and asking for a client certificate as
    /// `client_certs` says: one that is presented must chain to the trusted CAs either way.
    pub fn server_config_with(
        &self,
        client_certs: ClientCerts,
        protocol: Protocol,
    ) -> Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone());
        let builder = match client_certs {
            ClientCerts::Required => builder,
            ClientCerts::Optional => builder.allow_unauthenticated(),
        };
        let verifier = builder
            .build()
            .map_err(|e| parse("the CA bundle", e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| parse("TLS versions", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| parse("the certificate", e.to_string()))?;
        config.alpn_protocols = vec![protocol.alpn()];
        Ok(Arc::new(config))
    }

    /// A client config: the server's certificate must chain to the trusted CAs, and this
    /// certificate is presented.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        self.client_config_with(Protocol::H2)
    }

    /// A client config as [`Credentials::client_config`] makes, speaking `protocol`.
    pub fn client_config_with(&self, protocol: Protocol) -> Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| parse("TLS versions", e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| parse("the certificate", e.to_string()))?;
        config.alpn_protocols = vec![protocol.alpn()];
        Ok(Arc::new(config))
    }
}

/// A gRPC endpoint for `addr` (`host:port`): plain `http://` without `tls`; with it,
/// `https://` presenting this side's certificate and trusting only the CA bundle, the server's
/// certificate checked against the host dialled. The material is what `tls` holds when the
/// endpoint is made: callers make endpoints again to pick up renewed files.
pub fn endpoint(addr: &str, tls: Option<&ReloadingTls>) -> Result<tonic::transport::Endpoint> {
    let bad = |e: String| Error::Invalid {
        field: "address",
        reason: format!("{addr:?}: {e}"),
    };
    let Some(tls) = tls else {
        return tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| bad(e.to_string()));
    };
    let creds = tls.credentials();
    let [ca, cert, key] = &creds.pem;
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .identity(tonic::transport::Identity::from_pem(cert, key));
    tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| bad(e.to_string()))?
        .tls_config(config)
        .map_err(|e| bad(e.to_string()))
}

/// What sets up an endpoint before it is connected.
type EndpointSetup = dyn Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint + Send + Sync;

/// Lazily connected channels to other nodes, one per address, over TLS when the owner runs
/// it; a channel made before the TLS files changed is made again with the new material.
pub struct Channels {
    tls: Option<Arc<ReloadingTls>>,
    configure: Box<EndpointSetup>,
    channels: Mutex<std::collections::HashMap<String, (u64, tonic::transport::Channel)>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Channels {
    /// Channels over `tls` (plain without it), each endpoint set up by `configure` (timeouts,
    /// windows) before it is connected.
    pub fn new(
        tls: Option<Arc<ReloadingTls>>,
        configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint
            + Send
            + Sync
            + 'static,
    ) -> Channels {
        Channels {
            tls,
            configure: Box::new(configure),
            channels: Mutex::new(Default::default()),
        }
    }

    /// The channel to `addr` (`host:port`).
    pub fn get(&self, addr: &str) -> Result<tonic::transport::Channel> {
        let tls = self.tls.as_deref();
        let generation = tls.map_or(0, ReloadingTls::generation);
        let mut channels = self.channels.lock();
        if let Some((made_with, channel)) = channels.get(addr) {
            if *made_with == generation {
                return Ok(channel.clone());
            }
        }
        let channel = (self.configure)(endpoint(addr, tls)?).connect_lazy();
        channels.insert(addr.to_string(), (generation, channel.clone()));
        Ok(channel)
    }
}

fn parse(what: &str, reason: String) -> Error {
    Error::Parse {
        what: what.into(),
        reason,
    }
}

/// What identifies one version of the files: each one's [`crate::files::FileStamp`].
type Stamp = Vec<crate::files::FileStamp>;

fn stamp(files: &TlsFiles) -> Stamp {
    files
        .paths()
        .iter()
        .map(|p| crate::files::file_stamp(p))
        .collect()
}

struct Loaded {
    stamp: Stamp,
    checked: Instant,
    credentials: Arc<Credentials>,
    server: Arc<ServerConfig>,
    server_optional: Arc<ServerConfig>,
    server_http: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// TLS configs from files, re-read when the files change (looked at, at most once a second,
/// when a config is asked for) or when [`ReloadingTls::reload`] is called (on SIGHUP). New
/// connections get the new material; open ones keep theirs. Files that fail to load leave the
/// last good material in use and the failure logged and counted.
pub struct ReloadingTls {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
    failed_reloads: std::sync::atomic::AtomicU64,
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingTls {
    /// Loads `files`; fails if they do not load now.
    pub fn new(files: TlsFiles) -> Result<Arc<ReloadingTls>> {
        let loaded = load(&files)?;
        Ok(Arc::new(ReloadingTls {
            files,
            loaded: Mutex::new(loaded),
            failed_reloads: Default::default(),
            generation: Default::default(),
        }))
    }

    /// The files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The server config for a new connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.fresh().server.clone()
    }

    /// The server config for a new connection speaking `protocol` that asks for a client
    /// certificate as `client_certs` says (HTTP/1.1 always leaves it optional).
    pub fn server_config_with(
        &self,
        client_certs: ClientCerts,
        protocol: Protocol,
    ) -> Arc<ServerConfig> {
        let loaded = self.fresh();
        match (protocol, client_certs) {
            (Protocol::Http1, _) => loaded.server_http.clone(),
            (Protocol::H2, ClientCerts::Required) => loaded.server.clone(),
            (Protocol::H2, ClientCerts::Optional) => loaded.server_optional.clone(),
        }
    }

    /// The client config for a new connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.fresh().client.clone()
    }

    /// The material in use.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.fresh().credentials.clone()
    }

    /// How many times new material was loaded since the start: a caller that keeps connections
    /// made with older material can tell it should make them again.
    pub fn generation(&self) -> u64 {
        drop(self.fresh());
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reloads that failed since the start (the last good material stayed in use).
    pub fn failed_reloads(&self) -> u64 {
        self.failed_reloads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-reads the files now, whether or not they look changed.
    pub fn reload(&self) -> Result<()> {
        match load(&self.files) {
            Ok(fresh) => {
                *self.loaded.lock() = fresh;
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failed_reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn fresh(&self) -> parking_lot::MutexGuard<'_, Loaded> {
        let mut loaded = self.loaded.lock();
        if loaded.checked.elapsed() < RECHECK {
            return loaded;
        }
        loaded.checked = Instant::now();
        let now = stamp(&self.files);
        if now == loaded.stamp {
            return loaded;
        }
        match load(&self.files) {
            Ok(fresh) => {
                tracing::info!(
                    cert = %self.files.cert.display(),
                    identity = ?fresh.credentials.certificate().identity,
                    "TLS files changed: new connections use the new certificate"
                );
                *loaded = fresh;
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                // Half-written files look like this too: try again at the next change.
                loaded.stamp = now;
                self.failed_reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous ones");
            }
        }
        loaded
    }
}

fn load(files: &TlsFiles) -> Result<Loaded> {
    let before = stamp(files);
    let credentials = Credentials::load(files)?;
    Ok(Loaded {
        stamp: before,
        checked: Instant::now(),
        server: credentials.server_config()?,
        server_optional: credentials.server_config_with(ClientCerts::Optional, Protocol::H2)?,
        server_http: credentials.server_config_with(ClientCerts::Optional, Protocol::Http1)?,
        client: credentials.client_config()?,
        credentials: Arc::new(credentials),
    })
}

/// TLS server connections from a stream of accepted connections, each with who is calling
/// ([`Peer`], read once from its certificate): each handshake runs in a task
/// of its own and must finish within `handshake_timeout`, so a slow or silent caller holds
/// nothing but its own socket for that long. Failed handshakes are logged (at debug: any
/// scanner makes them) and left out; accept errors pass through.
pub fn accept<IO, S>(
    incoming: S,
    tls: Arc<ReloadingTls>,
    options: AcceptOptions,
) -> impl Stream<Item = std::io::Result<Accepted<IO>>> + Send + 'static
where
    IO: AsyncRead + AsyncWrite + Connected<ConnectInfo = TcpConnectInfo> + Unpin + Send + 'static,
    S: Stream<Item = std::io::Result<IO>> + Send + Unpin + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut incoming = incoming;
        loop {
            let next = tokio::select! {
                // The server stopped reading: stop accepting.
                () = tx.closed() => break,
                next = incoming.next() => next,
            };
            let io = match next {
                None => break,
                Some(Err(e)) => {
                    if tx.send(Err(e)).await.is_err() {
                        break;
                    }
                    continue;
                }
                Some(Ok(io)) => io,
            };
            let acceptor =
                TlsAcceptor::from(tls.server_config_with(options.client_certs, options.protocol));
            let tx = tx.clone();
            let AcceptOptions {
                handshake_timeout,
                limiter,
                ..
            } = options.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        let accepted = Accepted::new(stream);
                        let accepted = match &limiter {
                            None => accepted,
                            Some(limiter) => {
                                let peer = accepted.peer().clone();
                                match accepted.limited(limiter) {
                                    Some(a) => a,
                                    None => {
                                        tracing::warn!(
                                            caller = %ConnectionLimiter::caller_of(peer.certificate.as_deref(), peer.remote),
                                            remote = ?peer.remote,
                                            limit = limiter.max_per_caller(),
                                            "connection refused: its caller holds the most connections already"
                                        );
                                        return;
                                    }
                                }
                            }
                        };
                        let _ = tx.send(Ok(accepted)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(
                        timeout_ms = handshake_timeout.as_millis() as u64,
                        "TLS handshake not finished in time; connection closed"
                    ),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
