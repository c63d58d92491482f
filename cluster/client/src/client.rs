//! [`Client`]: talks to any nodes of a cluster, finds the leader, and retries writes after a
//! leader change with the same request id and the same batch (so a write is applied once
//! however often it is retried). Every call has a deadline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::admin_client::AdminClient;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::store_client::StoreClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::connector::{CallCredentials, Connection, Connector};
use crate::error::ClientError;
use crate::retry::Backoff;
use crate::write_streams::WriteStreams;

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Who writes (1 to 64 bytes); request ids are unique per client id.
    pub client_id: String,
    /// The deadline of each call.
    pub call_timeout: Duration,
    /// How long a write keeps being retried (leader changes, elections) before giving up.
    pub retry_for: Duration,
    /// The largest message sent or received.
    pub max_message_bytes: usize,
    /// Whether writes travel on one stream per node (`Store.WriteStream`) rather than as a
    /// unary call each: the same answers and retries, with far less work per write on both
    /// sides when many writes are in flight.
    pub stream_writes: bool,
    /// Mutual TLS toward nodes that run it (`None`: plain gRPC). With a `token`, the TLS
    /// material may hold the CA bundle alone ([`crate::ClientTls::ca_only`]).
    pub tls: Option<crate::ClientTls>,
    /// A signed token (`qastore certs token`) presented on every call, for a client that
    /// holds no certificate; the nodes must accept tokens (`[tls] token_key_file`).
    pub token: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: format!("client-{}", std::process::id()),
            call_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(30),
            max_message_bytes: 64 << 20,
            stream_writes: true,
            tls: None,
            token: None,
        }
    }
}

/// A client of one cluster.
#[derive(Debug)]
pub struct Client {
    options: ClientConfig,
    endpoints: Vec<String>,
    connector: Connector,
    streams: WriteStreams,
    /// The client address of the node believed to lead.
    leader: Mutex<Option<String>>,
    next: AtomicUsize,
    request_ids: AtomicU64,
}

impl Client {
    /// A client of the cluster reachable at `endpoints` (`host:port` of nodes' client APIs;
    /// any subset of the members). Connections are made on first use.
    pub fn new(endpoints: &[String], options: ClientConfig) -> Result<Client, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::BadEndpoint("no endpoints given".into()));
        }
        for e in endpoints {
            Endpoint::from_shared(format!("http://{e}"))
                .map_err(|err| ClientError::BadEndpoint(format!("{e:?}: {err}")))?;
        }
        // Request ids start at the wall clock in microseconds, so a restarted client with the
        // same id does not reuse the ids of its previous run.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let credentials = CallCredentials::new(options.token.as_deref())?;
        let connector = Connector::new(
            options.call_timeout,
            options.max_message_bytes,
            options.tls.clone(),
            credentials,
        );
        Ok(Client {
            streams: WriteStreams::new(connector.clone()),
            connector,
            options,
            endpoints: endpoints.to_vec(),
            leader: Mutex::new(None),
            next: AtomicUsize::new(0),
            request_ids: AtomicU64::new(start.max(1)),
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &ClientConfig {
        &self.options
    }

    /// The endpoints it was given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The next endpoint in turn, for calls any node can answer.
    pub(crate) fn next_endpoint(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.endpoints[i % self.endpoints.len()].clone()
    }

    /// A new request id, unique for this client.
    pub fn next_request_id(&self) -> u64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The connections it keeps, for what it opens that outlives a borrow of it.
    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The store API of the node at `addr`.
    pub fn store_at(&self, addr: &str) -> Result<StoreClient<Connection>, ClientError> {
        self.connector.store_at(addr)
    }

    /// The admin API of the node at `addr`.
    pub fn admin_at(&self, addr: &str) -> Result<AdminClient<Connection>, ClientError> {
        self.connector.admin_at(addr)
    }

    /// The connection this client keeps to the node at `addr` (with its TLS, if any), for calls
    /// this library has no method for.
    pub fn channel_at(&self, addr: &str) -> Result<Channel, ClientError> {
        self.connector.channel(addr)
    }

    /// The feed API (subscriptions and durable consumers) of the node at `addr`.
    pub fn feed_at(&self, addr: &str) -> Result<FeedClient<Connection>, ClientError> {
        self.connector.feed_at(addr)
    }

    /// A request with this client's deadline.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.set_timeout(self.options.call_timeout);
        r
    }

    /// Where to send the next leader-only call: the known leader, else the next endpoint.
    fn target(&self) -> String {
        if let Some(l) = self.leader.lock().clone() {
            return l;
        }
        self.next_endpoint()
    }

    /// Learns from a failed call where the leader is (or that `addr` is not it).
    fn learn(&self, addr: &str, status: &Status) {
        let hint = api_metadata::leader_hint(status.metadata()).map(str::to_string);
        let mut leader = self.leader.lock();
        match hint {
            Some(h) => *leader = Some(h),
            None if leader.as_deref() == Some(addr) => *leader = None,
            None => {}
        }
    }

    /// Learns the leader from a successful answer that a follower forwarded (it names the
    /// leader), when that leader is one of this client's endpoints: the next writes go there
    /// directly. A leader at an address the caller did not give may not be reachable from
    /// here, so forwarding stays the way to it.
    fn note_forwarded(&self, hint: &str) {
        if self.endpoints.iter().any(|e| e == hint) {
            *self.leader.lock() = Some(hint.to_string());
        }
    }

    /// Writes `records` as one batch with a new request id, retrying through leader changes.
    pub async fn write(
        &self,
        records: Vec<pb::Record>,
        ack: pb::AckLevel,
    ) -> Result<pb::WriteResponse, ClientError> {
        let id = self.next_request_id();
        self.write_with_id(id, records, ack).await.map(|(r, _)| r)
    }

    /// Writes `records` under `request_id`, retrying (same id, same batch) through leader
    /// changes and elections for up to the client's `retry_for`. Returns the answer and how
    /// many retries it took.
    pub async fn write_with_id(
        &self,
        request_id: u64,
        records: Vec<pb::Record>,
        ack: pb::AckLevel,
    ) -> Result<(pb::WriteResponse, u32), ClientError> {
        let req = pb::WriteRequest {
            client_id: self.options.client_id.clone(),
            request_id,
            records,
            ack: ack as i32,
        };
        self.leader_call(|addr| {
            let req = req.clone();
            async move {
                if self.options.stream_writes && self.streams.serves(&addr) {
                    let (response, hint) = self
                        .streams
                        .write(&addr, req, self.options.call_timeout)
                        .await?;
                    if let Some(h) = hint {
                        self.note_forwarded(&h);
                    }
                    return Ok(response);
                }
                let mut client = self.store_at(&addr)?;
                client
                    .write(self.request(req))
                    .await
                    .map(|r| {
                        if let Some(h) = api_metadata::leader_hint(r.metadata()) {
                            self.note_forwarded(h);
                        }
                        r.into_inner()
                    })
                    .map_err(ClientError::from)
            }
        })
        .await
    }

    /// Runs a call that must reach the leader, following leader hints and retrying
    /// retryable failures until the client's `retry_for` runs out.
    pub async fn leader_call<T, F, Fut>(&self, call: F) -> Result<(T, u32), ClientError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let mut retries = 0u32;
        loop {
            let addr = self.target();
            let err = match call(addr.clone()).await {
                Ok(v) => return Ok((v, retries)),
                Err(e) => e,
            };
            if let ClientError::Status { status, .. } = &err {
                self.learn(&addr, status);
            }
            if !err.is_retryable() || started.elapsed() >= self.options.retry_for {
                return Err(err);
            }
            let wait = match &err {
                // Pointed at the leader: go there at once.
                ClientError::Status { status, .. }
                    if status.code() == Code::FailedPrecondition
                        && status.metadata().get(api_metadata::LEADER).is_some() =>
                {
                    Duration::ZERO
                }
                e => backoff.next(e.retry_after()),
            };
            retries += 1;
            tracing::debug!(error = %err, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// The cluster's status, from the first endpoint that answers.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusResponse, ClientError> {
        let mut last = None;
        for addr in &self.endpoints {
            let mut admin = self.admin_at(addr)?;
            match admin
                .cluster_status(self.request(pb::ClusterStatusRequest {}))
                .await
            {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) => last = Some(ClientError::from(e)),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::BadEndpoint("no endpoints".into())))
    }

    /// The leader and its client address. Every endpoint is asked for its own status; the
    /// node that reports itself leader in the highest term wins (a restarted old leader may
    /// still believe it leads an older term). Without such a node, the leader named in the
    /// highest term is taken.
    pub async fn find_leader(&self) -> Result<(u64, String), ClientError> {
        let calls = self.endpoints.iter().map(|addr| async move {
            let mut admin = self.admin_at(addr)?;
            admin
                .get_node_status(self.request(pb::NodeStatusRequest {}))
                .await
                .map(|r| r.into_inner())
                .map_err(ClientError::from)
        });
        let answers = futures::future::join_all(calls).await;
        let mut last_error = None;
        let mut statuses = Vec::new();
        for a in answers {
            match a {
                Ok(s) => statuses.push(s),
                Err(e) => last_error = Some(e),
            }
        }
        let leading = statuses
            .iter()
            .filter(|s| s.role == pb::Role::Leader as i32)
            .max_by_key(|s| s.term);
        if let Some(l) = leading {
            *self.leader.lock() = Some(l.api_addr.clone());
            return Ok((l.node_id, l.api_addr.clone()));
        }
        let named = statuses
            .iter()
            .filter(|s| s.leader_id.is_some())
            .max_by_key(|s| s.term)
            .and_then(|s| s.leader_id);
        if let Some(id) = named {
            if let Some(s) = statuses.iter().find(|s| s.node_id == id) {
                *self.leader.lock() = Some(s.api_addr.clone());
                return Ok((id, s.api_addr.clone()));
            }
            // The named leader is not among the endpoints: ask a member for its address.
            for s in &statuses {
                let mut admin = self.admin_at(&s.api_addr)?;
                if let Ok(m) = admin.members(self.request(pb::MembersRequest {})).await {
                    if let Some(member) = m.into_inner().members.iter().find(|m| m.node_id == id) {
                        *self.leader.lock() = Some(member.api_addr.clone());
                        return Ok((id, member.api_addr.clone()));
                    }
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| ClientError::NoLeader("no endpoint knows a leader".into())))
    }
}
