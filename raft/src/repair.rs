//! Repairing a damaged engine from a peer: the peer side serves a checkpoint covering a given
//! log index (building one if its newest is older), and the damaged side pulls it into its own
//! checkpoint store, checking every file against its recorded size and CRC, so that the state
//! machine can switch its engine to it. The node keeps its log, vote and identity throughout.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointMeta, CheckpointStore};
use qastore_proto::peer_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::raft_peer_client::RaftPeerClient;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::error::{Error, Result};
use crate::network::server::MAX_MESSAGE_BYTES;
use crate::snapshot::decode_blob;
use crate::types::{NodeId, Raft};

/// Bytes of file data per chunk sent.
const CHUNK: usize = 1 << 20;
/// How long a peer works on producing a checkpoint that covers the index asked for.
const SERVE_WAIT: Duration = Duration::from_secs(30);
/// How long the fetching side waits for each message.
const CHUNK_WAIT: Duration = Duration::from_secs(30);

/// The stream of a served checkpoint.
pub type ChunkStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::SnapshotChunk, Status>> + Send>>;

/// The last log index a checkpoint covers.
fn covers(info: &CheckpointInfo) -> u64 {
    decode_blob(&info.meta.blob)
        .ok()
        .and_then(|m| m.last_log_id)
        .map_or(0, |l| l.index)
}

/// Serves a checkpoint of `checkpoints` covering at least `min_index`, asking `raft` to build
/// one when the newest is older. Refused with FAILED_PRECONDITION when none can be had in time
/// (this node has not applied that far).
pub async fn serve(
    raft: &Raft,
    checkpoints: &CheckpointStore,
    min_index: u64,
) -> std::result::Result<ChunkStream, Status> {
    let deadline = Instant::now() + SERVE_WAIT;
    let mut last_trigger: Option<Instant> = None;
    let info = loop {
        let latest = checkpoints
            .latest()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if let Some(info) = latest.as_ref().filter(|i| covers(i) >= min_index) {
            break info.clone();
        }
        if Instant::now() >= deadline {
            return Err(Status::failed_precondition(format!(
                "field min_index: no checkpoint here covers index {min_index} (the newest covers {})",
                latest.as_ref().map_or(0, covers)
            )));
        }
        // A snapshot covers what this node has applied when it runs: ask again now and then
        // until that reaches the index asked for.
        if last_trigger.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
            raft.trigger()
                .snapshot()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            last_trigger = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lease = checkpoints
        .lease(&info.name())
        .map_err(|e| Status::unavailable(e.to_string()))?;
    tracing::info!(checkpoint = %info.name(), min_index, "serving a checkpoint to a peer repairing its engine");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let meta = lease.info().meta.clone();
        let begin = pb::SnapshotChunk {
            chunk: Some(pb::snapshot_chunk::Chunk::Begin(pb::SnapshotBegin {
                vote: None,
                checkpoint: meta.encode().into(),
            })),
        };
        if tx.blocking_send(Ok(begin)).is_err() {
            return;
        }
        for f in &meta.files {
            let mut offset = 0;
            while offset < f.size {
                let chunk = match lease.read_chunk(&f.name, offset, CHUNK) {
                    Ok(data) if !data.is_empty() => data,
                    Ok(_) => break,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::unavailable(e.to_string())));
                        return;
                    }
                };
                let len = chunk.len() as u64;
                let data = pb::SnapshotChunk {
                    chunk: Some(pb::snapshot_chunk::Chunk::Data(pb::SnapshotData {
                        file: f.name.clone(),
                        offset,
                        data: chunk,
                    })),
                };
                if tx.blocking_send(Ok(data)).is_err() {
                    return;
                }
                offset += len;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// A peer to fetch from: its id and the address to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: NodeId,
    /// Its Raft address (after any dial override).
    pub addr: String,
}

/// Who this node is, for the metadata every peer call carries.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The cluster id.
    pub cluster_id: String,
    /// This node's id.
    pub node_id: NodeId,
    /// Mutual TLS for calls to peers; `None`: plain gRPC.
    pub tls: Option<std::sync::Arc<qastore_security::tls::ReloadingTls>>,
}

fn meta_value(s: &str) -> Result<MetadataValue<tonic::metadata::Ascii>> {
    s.parse()
        .map_err(|_| Error::InvalidArgument(format!("field cluster_id: {s:?} is not ASCII")))
}

fn remote(peer: &Peer, what: impl std::fmt::Display) -> Error {
    Error::NoLeader(format!("node {} at {}: {what}", peer.id, peer.addr))
}

/// Pulls a checkpoint covering at least `min_index` from `peer` into `store`.
pub async fn fetch(
    caller: &Caller,
    peer: &Peer,
    min_index: u64,
    store: &CheckpointStore,
) -> Result<CheckpointInfo> {
    let endpoint = qastore_security::tls::endpoint(&peer.addr, caller.tls.as_deref())
        .map_err(|e| remote(peer, e))?
        .connect_timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| remote(peer, e))?;
    let (cluster, from, to) = (
        meta_value(&caller.cluster_id)?,
        meta_value(&caller.node_id.to_string())?,
        meta_value(&peer.id.to_string())?,
    );
    let mut client = RaftPeerClient::with_interceptor(channel, move |mut req: Request<()>| {
        let md = req.metadata_mut();
        md.insert(peer_metadata::CLUSTER, cluster.clone());
        md.insert(peer_metadata::FROM, from.clone());
        md.insert(peer_metadata::TO, to.clone());
        Ok(req)
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let call = client.fetch_snapshot(pb::FetchSnapshotRequest { min_index });
    let mut inbound = tokio::time::timeout(SERVE_WAIT + CHUNK_WAIT, call)
        .await
        .map_err(|_| remote(peer, "no answer in time"))?
        .map_err(|s| remote(peer, s.message()))?
        .into_inner();
    let Some(pb::snapshot_chunk::Chunk::Begin(begin)) = next_chunk(&mut inbound)
        .await
        .map_err(|e| remote(peer, e))?
    else {
        return Err(remote(
            peer,
            "the checkpoint did not start with its description",
        ));
    };
    let meta = CheckpointMeta::decode(&begin.checkpoint)
        .ok_or_else(|| remote(peer, "the checkpoint's description is damaged"))?;
    let snapshot = decode_blob(&meta.blob)?;
    let covered = snapshot.last_log_id.map_or(0, |l| l.index);
    if covered < min_index || covered != meta.log_index {
        return Err(remote(
            peer,
            format!("sent a checkpoint covering {covered}, {min_index} was asked for"),
        ));
    }
    let store2 = store.clone();
    let mut installer = tokio::task::spawn_blocking(move || store2.begin_install(meta))
        .await
        .map_err(|e| Error::Stopped(e.to_string()))??;
    while let Some(chunk) = next_chunk(&mut inbound)
        .await
        .map_err(|e| remote(peer, e))?
    {
        let pb::snapshot_chunk::Chunk::Data(data) = chunk else {
            return Err(remote(peer, "expected file data"));
        };
        installer = tokio::task::spawn_blocking(move || {
            installer
                .write(&data.file, data.offset, &data.data)
                .map(|()| installer)
        })
        .await
        .map_err(|e| Error::Stopped(e.to_string()))??;
    }
    // Checks every file's size and CRC against the description.
    let info = tokio::task::spawn_blocking(move || installer.finish())
        .await
        .map_err(|e| Error::Stopped(e.to_string()))??;
    tracing::info!(peer = peer.id, checkpoint = %info.name(), covers = covered, "fetched a checkpoint from a peer");
    Ok(info)
}

/// The next message of a fetched checkpoint, waiting at most [`CHUNK_WAIT`].
async fn next_chunk(
    inbound: &mut tonic::Streaming<pb::SnapshotChunk>,
) -> std::result::Result<Option<pb::snapshot_chunk::Chunk>, String> {
    match tokio::time::timeout(CHUNK_WAIT, inbound.next()).await {
        Err(_) => Err("no chunk arrived in time".to_string()),
        Ok(None) => Ok(None),
        Ok(Some(Err(s))) => Err(s.message().to_string()),
        Ok(Some(Ok(c))) => c
            .chunk
            .map(Some)
            .ok_or_else(|| "an empty chunk".to_string()),
    }
}

/// Tries `peers` in turn until one serves a checkpoint covering `min_index`.
pub async fn fetch_from_any(
    caller: &Caller,
    peers: &[Peer],
    min_index: u64,
    store: &CheckpointStore,
) -> Result<CheckpointInfo> {
    let mut errors = Vec::new();
    for peer in peers {
        match fetch(caller, peer, min_index, store).await {
            Ok(info) => return Ok(info),
            Err(e) => {
                tracing::warn!(peer = peer.id, error = %e, "could not fetch a checkpoint");
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        return Err(Error::NoLeader(
            "no other member is known to fetch a snapshot from".into(),
        ));
    }
    Err(Error::NoLeader(format!(
        "no peer served a checkpoint covering index {min_index}: {}",
        errors.join("; ")
    )))
}

/// Shared so that the state machine can reach peers once the node knows them.
pub type PeerList = Arc<dyn Fn() -> Vec<Peer> + Send + Sync>;

/// The members of `membership` other than `me`, each at the address to dial.
pub fn peers_of(
    membership: &crate::types::Membership,
    me: NodeId,
    dial_overrides: &std::collections::HashMap<String, String>,
) -> Vec<Peer> {
    membership
        .nodes()
        .filter(|(id, _)| **id != me)
        .map(|(id, node)| Peer {
            id: *id,
            addr: dial_overrides
                .get(&node.raft_addr)
                .cloned()
                .unwrap_or_else(|| node.raft_addr.clone()),
        })
        .collect()
}

/// How long a node starting with a damaged engine tries to repair it before refusing to start.
const START_REPAIR_WAIT: Duration = Duration::from_secs(60);

/// Before Raft starts: replaces an engine found damaged with a checkpoint from a peer, covering
/// at least what the engine held and everything the log has purged, so that the log continues
/// right after it. Log entries that disagree with the checkpoint (never committed) are dropped.
/// Refuses to start (naming the damage, with its file and offset) when no peer can repair it.
pub async fn repair_at_start(
    sm: &crate::state_machine::StateMachine,
    wal: &qastore_lsm::wal::Wal,
    caller: &Caller,
    dial_overrides: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let Some(reason) = sm.damage().reason() else {
        return Ok(());
    };
    let peers = peers_of(sm.membership().membership(), caller.node_id, dial_overrides);
    if peers.is_empty() {
        return Err(Error::Damaged(format!(
            "{reason}; no other member to repair it from: refusing to start"
        )));
    }
    let min_index = sm
        .applied()
        .map_or(0, |a| a.index)
        .max(wal.meta().last_purged.map_or(0, |p| p.index));
    let deadline = Instant::now() + START_REPAIR_WAIT;
    let installed = loop {
        match sm.repair_from(caller, &peers, min_index).await {
            Ok(id) => break id,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "repairing the damaged engine failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(Error::Damaged(format!(
                    "{reason}; no peer could repair it ({e}): refusing to start"
                )))
            }
        }
    };
    if let Some(id) = installed {
        if wal
            .term_of(id.index)
            .is_some_and(|t| t != id.leader_id.term)
        {
            tracing::warn!(
                from = id.index,
                "dropping log entries that disagree with the installed checkpoint"
            );
            wal.truncate_from(id.index)?;
        }
    }
    Ok(())
}

/// Repairs damage found while no entries are applied (a background compaction that hit a bad
/// block, say) without waiting for the next entry. Runs until `stopped` turns true.
pub fn spawn_watch(
    sm: crate::state_machine::StateMachine,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = sm.repair_if_damaged().await {
                tracing::warn!(error = %e, "the damaged engine is not repaired yet");
            }
        }
    })
}

/// The peers a running node repairs from: the leader it knows first, then the other members.
pub fn running_peers(
    raft: Raft,
    me: NodeId,
    dial_overrides: std::collections::HashMap<String, String>,
) -> PeerList {
    Arc::new(move || {
        use openraft::async_runtime::WatchReceiver;
        let m = raft.metrics().borrow_watched().clone();
        let mut peers = peers_of(m.membership_config.membership(), me, &dial_overrides);
        if let Some(leader) = m.current_leader {
            peers.sort_by_key(|p| p.id != leader);
        }
        peers
    })
}
