//! Calling peers: openraft's network on tonic.
//!
//! * One HTTP/2 connection per peer address, shared by every call to it and re-established by
//!   tonic when it breaks (connections are reused, never opened per call).
//! * Every call carries the cluster id and both node ids; the peer refuses a mismatch.
//! * Unary calls are bounded by openraft's deadline; a stream of appends by a deadline on each
//!   answer it is waiting for (the configured peer call timeout, grown by the bytes in flight:
//!   [`flight`](super::flight)); a snapshot by a deadline on each chunk. Dropping a call
//!   (openraft cancelling it) cancels it on the wire.
//! * A peer that cannot be reached is reported as `Unreachable`, and replication to it backs off
//!   (doubling from 50 ms to 400 ms): openraft waits out the back-off while it makes a stream's
//!   first request, so that request is taken before the peer is dialed. The cap is short
//!   because a restarted follower gets nothing until the next try: with a longer one the
//!   cluster ran on two nodes for up to that long after the third was back.
//! * Each peer's streams, failures and lost acknowledged entries are recorded
//!   ([`peer_book`](super::peer_book)).

use qastore_security::tls::{Channels, ReloadingTls};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError,
    StreamAppendResult, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use qastore_proto::peer_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::raft_peer_client::RaftPeerClient;
use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::append_link::{self, Caller, Link, LinkPool, OpenError, SenderGuard};
use super::append_wire::Frame;
use super::convert;
use super::flight::{AnswerDeadline, Flight};
use super::peer_book::{PeerBook, PeerStats};
use super::server::MAX_MESSAGE_BYTES;
use crate::config::AppendTransport;
use crate::snapshot::SnapshotFiles;
use crate::types::{NodeId, PeerNode, Snapshot, TypeConfig, Vote};
use crate::write_stages::{Point, Timeline};

type Client = RaftPeerClient<InterceptedService<Channel, Stamp>>;
type RpcError = RPCError<TypeConfig>;

/// Adds the cluster id and the node ids to every call.
#[derive(Debug, Clone)]
pub struct Stamp {
    cluster: MetadataValue<tonic::metadata::Ascii>,
    from: MetadataValue<tonic::metadata::Ascii>,
    to: MetadataValue<tonic::metadata::Ascii>,
}

impl tonic::service::Interceptor for Stamp {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let md = req.metadata_mut();
        md.insert(peer_metadata::CLUSTER, self.cluster.clone());
        md.insert(peer_metadata::FROM, self.from.clone());
        md.insert(peer_metadata::TO, self.to.clone());
        Ok(req)
    }
}

/// Timeouts and sizes of peer calls.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Connecting to a peer fails after this long.
    pub connect_timeout: Duration,
    /// How long an append stream waits for each answer it is owed.
    pub answer_deadline: AnswerDeadline,
    /// Sending one snapshot chunk fails after this long.
    pub chunk_timeout: Duration,
    /// Bytes per snapshot chunk.
    pub chunk_bytes: usize,
    /// Addresses this node dials instead of peers' advertised Raft addresses (advertised ->
    /// dialed): for networks where peers are reached through a proxy or NAT, and for fault
    /// injection. Keyed by address, so a node replaced at the same address is covered too.
    pub dial_overrides: HashMap<String, String>,
    /// Mutual TLS for calls to peers; `None`: plain gRPC.
    pub tls: Option<Arc<ReloadingTls>>,
    /// How append streams travel to peers.
    pub append_transport: AppendTransport,
}

struct NetInner {
    cluster_id: String,
    node_id: NodeId,
    options: NetworkConfig,
    channels: Channels,
    book: PeerBook,
    /// Stamped when entries are sent to a peer and when it answers that it holds them.
    timeline: Arc<Timeline>,
    /// Idle append-stream connections to peers.
    links: LinkPool,
}

/// Creates clients to peers (openraft's network factory). Clones share connections.
#[derive(Clone)]
pub struct PeerNetwork {
    inner: Arc<NetInner>,
}

impl PeerNetwork {
    /// The network of node `node_id` in cluster `cluster_id`, stamping the entries it sends
    /// and peers' answers on `timeline`.
    pub fn new(
        cluster_id: &str,
        node_id: NodeId,
        options: NetworkConfig,
        timeline: Arc<Timeline>,
    ) -> Self {
        let connect_timeout = options.connect_timeout;
        PeerNetwork {
            inner: Arc::new(NetInner {
                cluster_id: cluster_id.to_string(),
                node_id,
                channels: Channels::new(options.tls.clone(), move |e| {
                    e.connect_timeout(connect_timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(5))
                        .keep_alive_timeout(Duration::from_secs(5))
                        .initial_stream_window_size(Some(8 << 20))
                        .initial_connection_window_size(Some(16 << 20))
                }),
                options,
                book: PeerBook::default(),
                timeline,
                links: LinkPool::default(),
            }),
        }
    }

    /// What this node's calls to each peer saw.
    pub fn peer_stats(&self) -> BTreeMap<NodeId, PeerStats> {
        self.inner.book.stats()
    }

    /// The shared connection to `addr`, created on first use.
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        self.inner
            .channels
            .get(addr)
            .map_err(|e| format!("peer address: {e}"))
    }

    /// A client for node `target` at `node`.
    pub fn client(&self, target: NodeId, node: &PeerNode) -> PeerClient {
        let ascii = |s: String| MetadataValue::try_from(s).map_err(|e| e.to_string());
        let addr = self
            .inner
            .options
            .dial_overrides
            .get(&node.raft_addr)
            .unwrap_or(&node.raft_addr)
            .clone();
        let client = self.channel(&addr).and_then(|channel| {
            let stamp = Stamp {
                cluster: ascii(self.inner.cluster_id.clone())?,
                from: ascii(self.inner.node_id.to_string())?,
                to: ascii(target.to_string())?,
            };
            Ok(RaftPeerClient::with_interceptor(channel, stamp)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES))
        });
        PeerClient {
            target,
            addr,
            client,
            net: self.inner.clone(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerClient {
        self.client(target, node)
    }
}

/// Calls to one peer.
pub struct PeerClient {
    target: NodeId,
    /// The address dialed (after any override).
    addr: String,
    client: Result<Client, String>,
    net: Arc<NetInner>,
}

fn status_error(status: Status) -> RpcError {
    match status.code() {
        // Down, refusing us (another cluster, another node at that address), or not
        // listening: back off.
        Code::Unavailable
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Unauthenticated
        | Code::InvalidArgument => RPCError::Unreachable(Unreachable::new(&status)),
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

/// Bytes of entries an append carries.
fn request_bytes(request: &pb::AppendRequest) -> u64 {
    request.entries.iter().map(|e| e.len() as u64).sum()
}

/// Records what an answer of `target` to a leader of `term` says of its log, and reports a
/// log that lost entries it had acknowledged.
fn note_answer(
    book: &PeerBook,
    target: NodeId,
    term: u64,
    result: &StreamAppendResult<TypeConfig>,
) {
    match result {
        Ok(Some(last)) => book.acked(target, term, last.index),
        Err(StreamAppendError::Conflict(missing)) => {
            if let Some(lost) = book.lacks(target, term, missing.index) {
                tracing::error!(
                    node = target,
                    acknowledged = lost.acknowledged,
                    missing = lost.missing,
                    "node {target} lost log entries it had acknowledged: it held the log up to \
                     index {}, now it lacks index {} (its data directory went back in time, \
                     restored from an older copy?); replicating its log again from where it ends",
                    lost.acknowledged,
                    lost.missing,
                );
            }
        }
        _ => {}
    }
}

/// The index range of the entries `rpc` carries.
fn entry_span(rpc: &AppendEntriesRequest<TypeConfig>) -> Option<(u64, u64)> {
    rpc.entries
        .first()
        .zip(rpc.entries.last())
        .map(|(a, b)| (a.log_id.index, b.log_id.index))
}

/// Stamps the entries `rpc` carries as sent to the peer at `position`.
fn stamp_sent(timeline: &Timeline, position: usize, rpc: &AppendEntriesRequest<TypeConfig>) {
    if let Some((first, last)) = entry_span(rpc) {
        timeline.range_passed(first, last, Point::Sent(position), Instant::now());
    }
}

/// Stamps as acknowledged by the peer at `position` the entries from `next_unacked` up to
/// what its answer says it holds, and moves `next_unacked` past them.
fn stamp_acked(
    timeline: &Timeline,
    position: usize,
    next_unacked: &AtomicU64,
    result: &StreamAppendResult<TypeConfig>,
) {
    if let Ok(Some(held)) = result {
        let from = next_unacked.load(Ordering::Relaxed);
        if held.index >= from {
            timeline.acknowledged(from, held.index, position, Instant::now());
        }
        next_unacked.store(held.index + 1, Ordering::Relaxed);
    }
}

impl PeerClient {
    /// Asks this peer, the leader, for the index a linearizable read must wait for.
    pub async fn read_index(&self, timeout: Duration) -> Result<u64, Status> {
        let mut client = self
            .client
            .clone()
            .map_err(|e| Status::unavailable(format!("leader address: {e}")))?;
        let call = client.read_index(pb::ReadIndexRequest {});
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(Status::unavailable(
                "the leader did not confirm a read index in time",
            )),
            Ok(r) => r.map(|r| r.into_inner().index),
        }
    }

    /// Whether this peer answers within `timeout`: `Ok((term, is_leader))` if it does.
    pub async fn probe(&self, timeout: Duration) -> Result<(u64, bool), Status> {
        let mut client = self
            .client
            .clone()
            .map_err(|e| Status::unavailable(format!("peer address: {e}")))?;
        let call = client.probe(pb::ProbeRequest {});
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(Status::deadline_exceeded("the peer did not answer in time")),
            Ok(r) => r.map(|r| {
                let r = r.into_inner();
                (r.term, r.leader)
            }),
        }
    }

    fn client(&self) -> Result<Client, RpcError> {
        self.client
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))
    }

    fn timeout(&self, action: RPCTypes, after: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.net.node_id,
            target: self.target,
            timeout: after,
        }
    }

    /// Runs a unary call within openraft's deadline.
    async fn unary<T>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, RpcError> {
        match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => Err(RPCError::Timeout(self.timeout(action, option.hard_ttl()))),
            Ok(Err(status)) => Err(status_error(status)),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        }
    }
}

/// The snapshot's files as a stream of chunks, its description first.
fn snapshot_chunks(
    vote: Vote,
    files: SnapshotFiles,
    chunk_bytes: usize,
    progress: Arc<AtomicU64>,
) -> impl Stream<Item = pb::SnapshotChunk> + Send + 'static {
    let begin = pb::SnapshotChunk {
        chunk: Some(pb::snapshot_chunk::Chunk::Begin(pb::SnapshotBegin {
            vote: Some(convert::vote_to_pb(&vote)),
            checkpoint: files.info().meta.encode().into(),
        })),
    };
    let pieces: Vec<(String, u64)> = files
        .info()
        .meta
        .files
        .iter()
        .flat_map(|f| {
            let n = f.size.div_ceil(chunk_bytes as u64).max(1);
            (0..n).map(move |i| (f.name.clone(), i * chunk_bytes as u64))
        })
        .collect();
    let data = futures::stream::iter(pieces).then(move |(file, offset)| {
        let files = files.clone();
        let progress = progress.clone();
        async move {
            let name = file.clone();
            let read = tokio::task::spawn_blocking(move || {
                files.lease().read_chunk(&name, offset, chunk_bytes)
            })
            .await;
            progress.fetch_add(1, Ordering::Relaxed);
            match read {
                Ok(Ok(data)) => Some(pb::SnapshotChunk {
                    chunk: Some(pb::snapshot_chunk::Chunk::Data(pb::SnapshotData {
                        file,
                        offset,
                        data,
                    })),
                }),
                // The receiver checks every size and CRC: a short stream fails there.
                Ok(Err(e)) => {
                    tracing::error!(error = %e, file = %file, "reading a snapshot file failed");
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading a snapshot file failed");
                    None
                }
            }
        }
    });
    futures::stream::once(async move { begin }).chain(
        data.take_while(|c| futures::future::ready(c.is_some()))
            .filter_map(futures::future::ready),
    )
}

/// What both transports of an append stream keep track of: the appends in flight and their
/// deadline, the stamps of sent and acknowledged entries, and what the peer's answers say.
struct StreamWatch {
    net: Arc<NetInner>,
    target: NodeId,
    /// The term of the leader that opened the stream.
    term: u64,
    flight: Arc<Flight>,
    position: usize,
    next_unacked: AtomicU64,
    timeout: Timeout<TypeConfig>,
}

impl StreamWatch {
    /// Watches a stream to `target` that begins with `first`.
    fn new(
        net: Arc<NetInner>,
        target: NodeId,
        first: &AppendEntriesRequest<TypeConfig>,
    ) -> Arc<Self> {
        let deadline = net.options.answer_deadline;
        let position = net.timeline.peer_position(target);
        Arc::new(StreamWatch {
            term: first.vote.leader_id.term,
            flight: Arc::new(Flight::new(deadline)),
            position,
            next_unacked: AtomicU64::new(first.prev_log_id.map_or(0, |p| p.index + 1)),
            timeout: Timeout {
                action: RPCTypes::AppendEntries,
                id: net.node_id,
                target,
                timeout: deadline.base,
            },
            net,
            target,
        })
    }

    /// `first`, then what `input` yields, as messages, each stamped as sent and counted in
    /// flight as it is taken.
    fn outgoing<S>(
        self: &Arc<Self>,
        first: AppendEntriesRequest<TypeConfig>,
        input: S,
    ) -> impl Stream<Item = pb::AppendRequest> + Send + Unpin + 'static
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        let watch = self.clone();
        futures::stream::once(futures::future::ready(first))
            .chain(input)
            .map(move |r| {
                stamp_sent(&watch.net.timeline, watch.position, &r);
                let request = convert::append_to_pb(&r);
                watch.flight.sent(request_bytes(&request));
                request
            })
    }

    /// Until when the next answer may be awaited (with nothing owed, a while: silence is
    /// fine, only look again later).
    fn until(&self) -> tokio::time::Instant {
        let until = self
            .flight
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.timeout.timeout);
        tokio::time::Instant::from_std(until)
    }

    /// After a wait ran out: the error to end the stream with if an answer is overdue
    /// (`None`: more was sent meanwhile, which moved the deadline; wait again).
    fn overdue(&self) -> Option<RpcError> {
        match self.flight.deadline() {
            Some(d) if Instant::now() >= d => {
                Some(self.failed(RPCError::Timeout(self.timeout.clone())))
            }
            _ => None,
        }
    }

    /// Reads an answer: counted, checked, recorded and stamped.
    fn answered(
        &self,
        answer: pb::AppendResponse,
    ) -> Result<StreamAppendResult<TypeConfig>, RpcError> {
        self.flight.answered();
        let result = convert::append_result_from_pb(answer)
            .map_err(|e| self.failed(RPCError::Network(NetworkError::new(&e))))?;
        note_answer(&self.net.book, self.target, self.term, &result);
        stamp_acked(
            &self.net.timeline,
            self.position,
            &self.next_unacked,
            &result,
        );
        Ok(result)
    }

    /// Records that the stream failed with `e`.
    fn failed(&self, e: RpcError) -> RpcError {
        self.net.book.failed(self.target);
        e
    }
}

/// An append stream to `target` at `addr` over the append stream's own framing: `first`,
/// then what `input` yields; the answers in order, each bounded by the flight's deadline.
async fn frames_stream<S>(
    net: Arc<NetInner>,
    target: NodeId,
    addr: String,
    first: AppendEntriesRequest<TypeConfig>,
    input: S,
) -> Result<impl Stream<Item = Result<StreamAppendResult<TypeConfig>, RpcError>> + Send, RpcError>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
{
    let caller = Caller {
        cluster: net.cluster_id.clone(),
        node_id: net.node_id,
    };
    let tls = net.options.tls.clone();
    let opened = net
        .links
        .take(
            &caller,
            target,
            &addr,
            tls.as_deref(),
            net.options.connect_timeout,
        )
        .await;
    let Link { reader, writer } = match opened {
        Ok(link) => link,
        Err(e) => {
            net.book.failed(target);
            return Err(match e {
                OpenError::Io(e) => RPCError::Unreachable(Unreachable::new(&e)),
                OpenError::Refused(status) => status_error(status),
            });
        }
    };
    let watch = StreamWatch::new(net, target, &first);
    let requests = watch.outgoing(first, input);
    let sender = SenderGuard(Some(append_link::spawn_sender(writer, requests)));
    Ok(futures::stream::unfold(
        Some((reader, sender)),
        move |state| {
            let (watch, addr) = (watch.clone(), addr.clone());
            async move {
                let (mut reader, mut sender) = state?;
                let frame = loop {
                    match tokio::time::timeout_at(watch.until(), reader.next()).await {
                        Ok(Some(Ok(bytes))) => break Frame::decode(bytes),
                        Ok(Some(Err(e))) => break Err(e),
                        Ok(None) => {
                            break Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the peer closed the append stream",
                            ))
                        }
                        Err(_) => match watch.overdue() {
                            Some(e) => return Some((Err(e), None)),
                            None => continue,
                        },
                    }
                };
                match frame {
                    Ok(Frame::Answer(answer)) => {
                        let r = watch.answered(answer);
                        let next = r.is_ok().then_some((reader, sender));
                        Some((r, next))
                    }
                    Ok(Frame::Done {
                        error: Some(status),
                        ..
                    }) => Some((Err(watch.failed(status_error(status))), None)),
                    Ok(Frame::Done {
                        reusable,
                        error: None,
                    }) => {
                        // The peer read this side's end: the connection can carry the next
                        // stream once the sender hands its half back.
                        if let (true, Some(task)) = (reusable, sender.0.take()) {
                            let wait = watch.timeout.timeout;
                            if let Ok(Ok(Some(writer))) = tokio::time::timeout(wait, task).await {
                                let net = &watch.net;
                                let link = Link { reader, writer };
                                net.links.give_back(&addr, net.options.tls.as_deref(), link);
                            }
                        }
                        None
                    }
                    Ok(other) => {
                        let why = format!("append stream: unexpected frame {other:?}");
                        let e = RPCError::Network(NetworkError::new(&std::io::Error::other(why)));
                        Some((Err(watch.failed(e)), None))
                    }
                    Err(e) => Some((
                        Err(watch.failed(RPCError::Unreachable(Unreachable::new(&e)))),
                        None,
                    )),
                }
            }
        },
    ))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFiles;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RpcError> {
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let term = rpc.vote.leader_id.term;
        let mut client = self.client()?;
        let timeline = self.net.timeline.clone();
        let position = timeline.peer_position(self.target);
        stamp_sent(&timeline, position, &rpc);
        let next_unacked = AtomicU64::new(entry_span(&rpc).map_or(u64::MAX, |(first, _)| first));
        let request = convert::append_to_pb(&rpc);
        let allowance = self
            .net
            .options
            .answer_deadline
            .allowance(request_bytes(&request));
        let call = async {
            let mut answers = client
                .append(futures::stream::iter([request]))
                .await?
                .into_inner();
            answers
                .next()
                .await
                .unwrap_or_else(|| Err(Status::unavailable("the peer closed the append stream")))
                .map(tonic::Response::new)
        };
        let wait = RPCOption::new(option.hard_ttl().max(allowance));
        let answer = self.unary(RPCTypes::AppendEntries, &wait, call).await?;
        let result = convert::append_result_from_pb(answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        note_answer(&self.net.book, self.target, term, &result);
        stamp_acked(&timeline, position, &next_unacked, &result);
        Ok(match result {
            Ok(flushed) if flushed == last => AppendEntriesResponse::Success,
            Ok(flushed) => AppendEntriesResponse::PartialSuccess(flushed),
            Err(e) => AppendEntriesResponse::from(Err(e)),
        })
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        _option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RpcError>>, RpcError>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let mut input = input;
            // Openraft waits out its back-off while it makes a request, and a peer that refuses
            // connections fails the call before the transport asks for one: without this, every
            // retry would dial at once, tens of thousands of times a second.
            let Some(first) = input.next().await else {
                return Ok(Box::pin(futures::stream::empty()) as BoxStream<'s, _>);
            };
            let (target, net) = (self.target, self.net.clone());
            net.book.opened(target);
            if net.options.append_transport == AppendTransport::Frames {
                let answers = frames_stream(net, target, self.addr.clone(), first, input).await?;
                return Ok(Box::pin(answers) as BoxStream<'s, _>);
            }
            let mut client = self.client().inspect_err(|_| net.book.failed(target))?;
            let base = net.options.answer_deadline.base;
            let watch = StreamWatch::new(net, target, &first);
            let requests = watch.outgoing(first, input);
            let inbound = match tokio::time::timeout(base, client.append(requests)).await {
                Err(_) => return Err(watch.failed(RPCError::Timeout(watch.timeout.clone()))),
                Ok(Err(status)) => return Err(watch.failed(status_error(status))),
                Ok(Ok(resp)) => resp.into_inner(),
            };
            let answers = futures::stream::unfold(Some(inbound), move |state| {
                let watch = watch.clone();
                async move {
                    let mut inbound = state?;
                    loop {
                        match tokio::time::timeout_at(watch.until(), inbound.next()).await {
                            Ok(Some(Ok(answer))) => {
                                let r = watch.answered(answer);
                                let next = r.is_ok().then_some(inbound);
                                return Some((r, next));
                            }
                            Ok(Some(Err(status))) => {
                                return Some((Err(watch.failed(status_error(status))), None));
                            }
                            Ok(None) => return None,
                            Err(_) => match watch.overdue() {
                                Some(e) => return Some((Err(e), None)),
                                None => continue,
                            },
                        }
                    }
                }
            });
            Ok(Box::pin(answers) as BoxStream<'s, _>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcError> {
        let mut client = self.client()?;
        let req = convert::vote_request_to_pb(&rpc);
        let answer = self
            .unary(RPCTypes::Vote, &option, client.vote(req))
            .await?;
        convert::vote_response_from_pb(answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcError> {
        let mut client = self.client()?;
        let req = convert::vote_request_to_pb(&rpc);
        let answer = self
            .unary(RPCTypes::Vote, &option, client.pre_vote(req))
            .await?;
        convert::vote_response_from_pb(answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self
            .client()
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
        let chunk_timeout = self.net.options.chunk_timeout;
        let progress = Arc::new(AtomicU64::new(0));
        let chunks = snapshot_chunks(
            vote,
            snapshot.snapshot,
            self.net.options.chunk_bytes,
            progress.clone(),
        );
        tracing::info!(target = self.target, last_log_id = ?snapshot.meta.last_log_id, "sending a snapshot");
        let call = client.install_snapshot(chunks);
        // No chunk taken for a whole chunk timeout: the peer (or the link) is stuck.
        let watchdog = async move {
            let mut seen = 0;
            let mut since = Instant::now();
            loop {
                tokio::time::sleep(chunk_timeout / 4).await;
                let now = progress.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    since = Instant::now();
                } else if since.elapsed() >= chunk_timeout {
                    return;
                }
            }
        };
        tokio::select! {
            r = call => {
                let answer = r.map_err(|s| match status_error(s) {
                    RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                    RPCError::Network(n) => StreamingError::Network(n),
                    RPCError::Timeout(t) => StreamingError::Timeout(t),
                    RPCError::RemoteError(e) => StreamingError::Network(NetworkError::new(&e)),
                })?.into_inner();
                let vote = convert::vote_from_pb(answer.vote, "snapshot result vote")
                    .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
                Ok(SnapshotResponse::new(vote))
            }
            () = watchdog => Err(StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, chunk_timeout))),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RpcError> {
        let mut client = self.client()?;
        let answer = self
            .unary(
                RPCTypes::TransferLeader,
                &option,
                client.transfer_leader(convert::transfer_to_pb(&req)),
            )
            .await?;
        convert::transfer_response_from_pb(&req, answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    fn backoff(&self) -> Option<Backoff> {
        let steps = std::iter::successors(Some(Duration::from_millis(50)), |d| {
            Some((*d * 2).min(Duration::from_millis(400)))
        });
        Some(Backoff::new(steps))
    }
}
