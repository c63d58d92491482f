//! The peer service a node serves to the other nodes of its cluster.
//!
//! Every call must carry this cluster's id and this node's id ([`PeerGuard`]): a node of another
//! cluster, or a peer that meant to reach a node that used to have this address, is refused
//! before anything is read.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use openraft::async_runtime::WatchReceiver;
use parking_lot::Mutex;
use qastore_lsm::checkpoint::{CheckpointMeta, CheckpointStore, Installer};
use qastore_proto::peer_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::raft_peer_server::{RaftPeer, RaftPeerServer};
use qastore_security::{CertSummary, Identity};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::follower_clock::FollowerClock;
use crate::snapshot::{decode_blob, SnapshotFiles};
use crate::types::{NodeId, Raft, Snapshot};
use crate::write_stages::{self, Stage};

/// The largest message a peer may send (an append of large batches, a snapshot chunk).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Append requests of one stream whose arrival is remembered for timing their answers.
const MAX_TIMED_APPENDS: usize = 4096;

/// Refuses calls from another cluster or meant for another node; with mutual TLS, also a call
/// whose certificate does not name the node of this cluster it claims to come from.
#[derive(Debug, Clone)]
pub struct PeerGuard {
    cluster_id: Arc<str>,
    node_id: NodeId,
    tls: bool,
}

impl PeerGuard {
    /// A guard for node `node_id` of cluster `cluster_id`; `tls`: calls arrive over mutual TLS
    /// and their certificates are checked.
    pub fn new(cluster_id: &str, node_id: NodeId, tls: bool) -> Self {
        PeerGuard {
            cluster_id: cluster_id.into(),
            node_id,
            tls,
        }
    }

    /// Admits a caller that says it is node `from` of cluster `cluster` calling node `to`,
    /// presenting `certificate` (with TLS, it must name that node of this cluster).
    pub fn admit(
        &self,
        cluster: Option<&str>,
        from: Option<NodeId>,
        to: Option<&str>,
        certificate: Option<&CertSummary>,
    ) -> Result<(), Status> {
        self.check_certificate(from, certificate)?;
        match cluster {
            None => {
                return Err(Status::unauthenticated(format!(
                    "peer call without {} metadata",
                    peer_metadata::CLUSTER
                )))
            }
            Some(c) if c != &*self.cluster_id => {
                return Err(Status::permission_denied(format!(
                    "this node belongs to cluster {:?}, not {c:?}",
                    &*self.cluster_id
                )))
            }
            Some(_) => {}
        }
        match to.map(str::parse::<NodeId>) {
            Some(Ok(to)) if to == self.node_id => Ok(()),
            Some(Ok(to)) => Err(Status::failed_precondition(format!(
                "this is node {}, not node {to}",
                self.node_id
            ))),
            _ => Err(Status::invalid_argument(format!(
                "peer call without a valid {} metadata",
                peer_metadata::TO
            ))),
        }
    }

    /// With TLS: the caller's certificate must name node `from` of this cluster.
    fn check_certificate(
        &self,
        from: Option<NodeId>,
        certificate: Option<&CertSummary>,
    ) -> Result<(), Status> {
        if !self.tls {
            return Ok(());
        }
        let Some(cert) = certificate else {
            return Err(Status::unauthenticated(
                "peer call without a client certificate",
            ));
        };
        match (&cert.identity, from) {
            (Some(Identity::Node { cluster, node_id }), Some(from))
                if **cluster == *self.cluster_id && *node_id == from =>
            {
                Ok(())
            }
            (who, from) => Err(Status::permission_denied(format!(
                "peer call claiming to come from node {} of cluster {:?}, but its certificate names {}",
                from.map_or_else(|| "?".to_string(), |f| f.to_string()),
                &*self.cluster_id,
                who.as_ref()
                    .map_or_else(|| cert.subject.clone(), |w| w.to_string())
            ))),
        }
    }
}

impl tonic::service::Interceptor for PeerGuard {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let md = req.metadata();
        let text = |key: &str| md.get(key).and_then(|v| v.to_str().ok());
        let from = text(peer_metadata::FROM).and_then(|v| v.parse::<NodeId>().ok());
        let certificate = qastore_security::tls::caller(&req);
        self.admit(
            text(peer_metadata::CLUSTER),
            from,
            text(peer_metadata::TO),
            certificate.as_deref(),
        )?;
        Ok(req)
    }
}

/// The peer service of one node.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft,
    checkpoints: CheckpointStore,
    clock: Arc<FollowerClock>,
    chunk_timeout: Duration,
}

impl PeerService {
    /// The service answering for `raft`, receiving snapshots into `checkpoints`, recording
    /// leader contact in `clock`.
    pub fn new(
        raft: Raft,
        checkpoints: CheckpointStore,
        clock: Arc<FollowerClock>,
        chunk_timeout: Duration,
    ) -> Self {
        PeerService {
            raft,
            checkpoints,
            clock,
            chunk_timeout,
        }
    }

    /// The service behind its guard, ready to add to a tonic server.
    pub fn into_server(
        self,
        guard: PeerGuard,
    ) -> InterceptedService<RaftPeerServer<Self>, PeerGuard> {
        let server = RaftPeerServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        InterceptedService::new(server, guard)
    }

    /// Appends what `inbound` carries to this node's log, answering each request in order
    /// once its entries are durable. A malformed request ends the input; the reason follows
    /// the last answer. Both transports of the append stream serve through this.
    pub fn append_stream<S>(&self, inbound: S) -> AppendStream
    where
        S: Stream<Item = Result<pb::AppendRequest, Status>> + Send + 'static,
    {
        let clock = self.clock.clone();
        let failure: Arc<Mutex<Option<Status>>> = Arc::new(Mutex::new(None));
        let fail = failure.clone();
        // When each request still unanswered arrived: openraft answers them in order.
        let arrivals: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
        let arrived = arrivals.clone();
        let input = inbound
            .map(move |item| item.and_then(|pb| convert::append_from_pb(pb).map_err(bad_request)))
            .take_while(move |item| {
                let ok = match item {
                    Ok(_) => true,
                    Err(status) => {
                        *fail.lock() = Some(status.clone());
                        false
                    }
                };
                futures::future::ready(ok)
            })
            .filter_map(move |item| {
                let req = item.ok();
                if let Some(r) = &req {
                    let mut arrived = arrived.lock();
                    if arrived.len() >= MAX_TIMED_APPENDS {
                        arrived.pop_front();
                    }
                    arrived.push_back(Instant::now());
                    drop(arrived);
                    clock.record(
                        r.vote.leader_id.term,
                        r.vote.leader_id.voted_for,
                        r.leader_commit.as_ref().map(|c| c.index),
                        Instant::now(),
                    );
                }
                futures::future::ready(req)
            });
        let output = self.raft.stream_append(input).map(move |r| {
            if let Some(arrived) = arrivals.lock().pop_front() {
                write_stages::record(Stage::FollowerAppend, arrived.elapsed());
            }
            match r {
                Ok(result) => Ok(convert::append_result_to_pb(&result)),
                Err(fatal) => Err(unavailable(fatal)),
            }
        });
        let trailer = futures::stream::once(async move { failure.lock().take() })
            .filter_map(|s| futures::future::ready(s.map(Err)));
        Box::pin(output.chain(trailer))
    }
}

fn bad_request(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(e.to_string())
}

/// The next snapshot chunk, waiting at most `wait` for it.
async fn next_chunk(
    inbound: &mut Streaming<pb::SnapshotChunk>,
    wait: Duration,
) -> Result<Option<pb::SnapshotChunk>, Status> {
    match tokio::time::timeout(wait, inbound.next()).await {
        Ok(Some(r)) => r.map(Some),
        Ok(None) => Ok(None),
        Err(_) => Err(Status::deadline_exceeded(
            "no snapshot chunk arrived within the chunk timeout",
        )),
    }
}

/// The answers of an append stream, in order; an error ends it.
pub type AppendStream = Pin<Box<dyn Stream<Item = Result<pb::AppendResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RaftPeer for PeerService {
    type AppendStream = AppendStream;
    type FetchSnapshotStream = crate::repair::ChunkStream;

    async fn fetch_snapshot(
        &self,
        request: Request<pb::FetchSnapshotRequest>,
    ) -> Result<Response<Self::FetchSnapshotStream>, Status> {
        let min_index = request.into_inner().min_index;
        crate::repair::serve(&self.raft, &self.checkpoints, min_index)
            .await
            .map(Response::new)
    }

    async fn append(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<Self::AppendStream>, Status> {
        Ok(Response::new(self.append_stream(request.into_inner())))
    }

    async fn vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = convert::vote_request_from_pb(request.into_inner()).map_err(bad_request)?;
        let resp = self.raft.vote(req).await.map_err(unavailable)?;
        Ok(Response::new(convert::vote_response_to_pb(&resp)))
    }

    async fn pre_vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = convert::vote_request_from_pb(request.into_inner()).map_err(bad_request)?;
        let resp = self.raft.pre_vote(req).await.map_err(unavailable)?;
        Ok(Response::new(convert::vote_response_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotResult>, Status> {
        let mut inbound = request.into_inner();
        let wait = self.chunk_timeout;
        let Some(pb::SnapshotChunk {
            chunk: Some(pb::snapshot_chunk::Chunk::Begin(begin)),
        }) = next_chunk(&mut inbound, wait).await?
        else {
            return Err(bad_request("a snapshot must start with its description"));
        };
        let vote = convert::vote_from_pb(begin.vote, "snapshot.begin.vote").map_err(bad_request)?;
        let meta = CheckpointMeta::decode(&begin.checkpoint)
            .ok_or_else(|| bad_request("snapshot.begin.checkpoint is damaged"))?;
        let snapshot_meta = decode_blob(&meta.blob).map_err(bad_request)?;
        if snapshot_meta.last_log_id.map_or(0, |id| id.index) != meta.log_index {
            return Err(bad_request(
                "snapshot.begin.checkpoint: the log index and the Raft state disagree",
            ));
        }
        // Do not take gigabytes from a deposed leader only for Raft to refuse them at the end.
        let current = self.raft.metrics().borrow_watched().vote;
        if vote < current {
            return Ok(Response::new(pb::SnapshotResult {
                vote: Some(convert::vote_to_pb(&current)),
            }));
        }
        let store = self.checkpoints.clone();
        let mut installer: Installer =
            tokio::task::spawn_blocking(move || store.begin_install(meta))
                .await
                .map_err(unavailable)?
                .map_err(bad_request)?;
        while let Some(chunk) = next_chunk(&mut inbound, wait).await? {
            let Some(pb::snapshot_chunk::Chunk::Data(data)) = chunk.chunk else {
                return Err(bad_request("snapshot chunk: expected file data"));
            };
            installer = tokio::task::spawn_blocking(move || {
                installer
                    .write(&data.file, data.offset, &data.data)
                    .map(|()| installer)
            })
            .await
            .map_err(unavailable)?
            .map_err(bad_request)?;
        }
        let info = tokio::task::spawn_blocking(move || installer.finish())
            .await
            .map_err(unavailable)?
            .map_err(bad_request)?;
        let lease = self.checkpoints.lease(&info.name()).map_err(unavailable)?;
        tracing::info!(checkpoint = %info.name(), last_log_id = ?snapshot_meta.last_log_id, "snapshot received");
        let snapshot = Snapshot {
            meta: snapshot_meta,
            snapshot: SnapshotFiles::new(lease),
        };
        let resp = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(unavailable)?;
        Ok(Response::new(pb::SnapshotResult {
            vote: Some(convert::vote_to_pb(&resp.vote)),
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let req = convert::transfer_from_pb(request.into_inner()).map_err(bad_request)?;
        let resp = self
            .raft
            .handle_transfer_leader(req)
            .await
            .map_err(unavailable)?;
        Ok(Response::new(convert::transfer_response_to_pb(&resp)))
    }

    async fn probe(
        &self,
        _request: Request<pb::ProbeRequest>,
    ) -> Result<Response<pb::ProbeResponse>, Status> {
        let m = self.raft.metrics().borrow_watched().clone();
        Ok(Response::new(pb::ProbeResponse {
            term: m.vote.leader_id.term,
            leader: m.state == openraft::ServerState::Leader,
        }))
    }

    async fn read_index(
        &self,
        _request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let log_id = self
            .raft
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
            .await
            .map_err(|e| Status::failed_precondition(format!("not the leader: {e}")))?;
        Ok(Response::new(pb::ReadIndexResponse {
            index: log_id.index(),
        }))
    }
}
