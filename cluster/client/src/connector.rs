//! Connections to nodes, one lazily connected channel per address, shared by a client and the
//! subscriptions it opens (a subscription outlives the borrow of its client).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qastore_proto::v1::admin_client::AdminClient;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::store_client::StoreClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;
use crate::tls::{ClientTls, Stamp};

/// How often, at most, the TLS files are looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// The TLS material in use and what the files looked like when it was read.
#[derive(Debug)]
struct TlsState {
    current: ClientTls,
    stamp: Stamp,
    checked: Instant,
}

/// A connection to a node as the client's calls use it: the channel, with the client's token
/// (if it has one) added to every call.
pub type Connection = InterceptedService<Channel, CallCredentials>;

/// Adds a client's token to each call (`authorization: Bearer <token>`); does nothing for a
/// client without one.
#[derive(Clone)]
pub struct CallCredentials {
    authorization: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for CallCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCredentials")
            .field("token", &self.authorization.is_some())
            .finish()
    }
}

impl CallCredentials {
    /// Credentials presenting `token`, if any.
    pub(crate) fn new(token: Option<&str>) -> Result<CallCredentials, ClientError> {
        let authorization = match token {
            None => None,
            Some(t) => Some(
                MetadataValue::try_from(format!("Bearer {}", t.trim()))
                    .map_err(|_| ClientError::BadTls("the token is not plain ASCII text".into()))?,
            ),
        };
        Ok(CallCredentials { authorization })
    }
}

impl tonic::service::Interceptor for CallCredentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(a) = &self.authorization {
            req.metadata_mut().insert("authorization", a.clone());
        }
        Ok(req)
    }
}

/// Makes and keeps the channels to nodes. Cheap to clone: clones share the channels.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    connect_timeout: Duration,
    max_message_bytes: usize,
    tls: Option<Arc<Mutex<TlsState>>>,
    credentials: CallCredentials,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Connector {
    /// Channels that give up connecting after `call_timeout` (at most 2 s) and carry messages
    /// up to `max_message_bytes`, over mutual TLS with `tls`.
    pub(crate) fn new(
        call_timeout: Duration,
        max_message_bytes: usize,
        tls: Option<ClientTls>,
        credentials: CallCredentials,
    ) -> Connector {
        Connector {
            connect_timeout: call_timeout.min(Duration::from_secs(2)),
            max_message_bytes,
            tls: tls.map(|current| {
                let stamp = current
                    .files
                    .as_ref()
                    .map(|f| f.stamp())
                    .unwrap_or_default();
                Arc::new(Mutex::new(TlsState {
                    current,
                    stamp,
                    checked: Instant::now(),
                }))
            }),
            credentials,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The connection to `addr`: its channel with the client's credentials.
    fn connection(&self, addr: &str) -> Result<Connection, ClientError> {
        Ok(InterceptedService::new(
            self.channel(addr)?,
            self.credentials.clone(),
        ))
    }

    /// The TLS material to connect with now: read again from its files when they changed
    /// (looked at, at most once a second), which also drops the channels made with the old
    /// material, so that the next calls connect anew. Files that do not load leave the old
    /// material in use.
    fn current_tls(&self, channels: &mut HashMap<String, Channel>) -> Option<ClientTls> {
        let state = self.tls.as_ref()?;
        let mut state = state.lock();
        if let Some(files) = state.current.files.clone() {
            if state.checked.elapsed() >= RECHECK {
                state.checked = Instant::now();
                let stamp = files.stamp();
                if stamp != state.stamp {
                    match ClientTls::from_files(&files.ca, &files.cert, &files.key) {
                        Ok(fresh) => {
                            tracing::info!(cert = %files.cert.display(), "TLS files changed: reconnecting with them");
                            state.current = fresh;
                            state.stamp = stamp;
                            channels.clear();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous ones");
                        }
                    }
                }
            }
        }
        Some(state.current.clone())
    }

    /// The channel to `addr` (`host:port`), made on first use.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut channels = self.channels.lock();
        let tls = self.current_tls(&mut channels);
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| ClientError::BadEndpoint(format!("{addr:?}: {e}")))?;
        if let Some(tls) = &tls {
            endpoint = endpoint
                .tls_config(tls.config())
                .map_err(|e| ClientError::BadTls(format!("{addr:?}: {e}")))?;
        }
        let channel = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// The store API of the node at `addr`.
    pub(crate) fn store_at(&self, addr: &str) -> Result<StoreClient<Connection>, ClientError> {
        let max = self.max_message_bytes;
        Ok(StoreClient::new(self.connection(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// The admin API of the node at `addr`.
    pub(crate) fn admin_at(&self, addr: &str) -> Result<AdminClient<Connection>, ClientError> {
        let max = self.max_message_bytes;
        Ok(AdminClient::new(self.connection(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// The feed API of the node at `addr`.
    pub(crate) fn feed_at(&self, addr: &str) -> Result<FeedClient<Connection>, ClientError> {
        let max = self.max_message_bytes;
        Ok(FeedClient::new(self.connection(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }
}
