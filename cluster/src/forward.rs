//! Where a write goes: a node first decides whether it is the leader, and a follower that
//! forwards writes hands the caller's request to the leader as it came, before converting or
//! validating any of it: the leader does that once, and its answer (a refusal naming the
//! record and field included) goes back to the caller unchanged.

use std::time::Duration;

use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::metrics;
use crate::node::Node;

/// Where a write is served.
#[derive(Debug)]
pub enum Route {
    /// This node is the leader: admit, propose and apply here.
    Here,
    /// Another node leads and this node forwards writes: send it there, at this client address.
    Forward(String),
}

/// Decides where a write is served, before anything in it is looked at. `forwarded` is set
/// when another node already forwarded the write here: it is never forwarded twice.
///
/// A follower that does not forward (or may not, the write being forwarded already) refuses
/// with the leader's address, or with "no leader" during an election.
pub fn route(node: &Node, forwarded: bool) -> Result<Route, ApiError> {
    let raft = &node.raft;
    if raft.is_leader() {
        return Ok(Route::Here);
    }
    match raft.leader() {
        Some((id, peer)) if id != raft.id() && node.config.forward_writes && !forwarded => {
            Ok(Route::Forward(peer.api_addr))
        }
        leader => Err(qastore_raft::Error::NotLeader { leader }.into()),
    }
}

/// Sends the caller's write to the leader at `leader_api` with the caller's own metadata, the
/// time left of its deadline, and the mark that stops the leader from forwarding it again. The
/// answer names the leader (`qastore-leader`), so a client can send its next writes there
/// and save the hop.
pub async fn forward(
    node: &Node,
    metadata: &MetadataMap,
    req: pb::WriteRequest,
    leader_api: &str,
    timeout: Duration,
) -> Result<Response<pb::WriteResponse>, Status> {
    metrics::forwarded_write();
    let mut client = node.peers.store(leader_api)?;
    let mut fwd = Request::from_parts(
        callers_metadata(metadata),
        tonic::Extensions::default(),
        req,
    );
    fwd.set_timeout(timeout);
    fwd.metadata_mut()
        .insert(api_metadata::FORWARDED, node.raft.id().into());
    match tokio::time::timeout(timeout, client.write(fwd)).await {
        Ok(Ok(mut r)) => {
            if let Ok(v) = MetadataValue::try_from(leader_api) {
                r.metadata_mut().insert(api_metadata::LEADER, v);
            }
            Ok(r)
        }
        // The leader this node knows of cannot be reached: most likely it is gone and an
        // election is due.
        Ok(Err(s)) if s.code() == tonic::Code::Unavailable && s.metadata().is_empty() => {
            Err(ApiError::NoLeader(format!(
                "the leader this node knows of ({leader_api}) is unreachable ({}): an election may be under way",
                s.message()
            ))
            .into())
        }
        Ok(Err(s)) => Err(s),
        Err(_) => Err(ApiError::DeadlineExceeded(format!(
            "the leader at {leader_api} did not answer the forwarded write in time; retry with the same request id"
        ))
        .into()),
    }
}

/// The caller's own metadata: what the transport and gRPC set on the way in (content type,
/// encodings, the timeout) is left for this node's client to set afresh, and no caller can
/// pose as a forwarding node.
pub(crate) fn callers_metadata(md: &MetadataMap) -> MetadataMap {
    const TRANSPORT: [&str; 4] = ["te", "content-type", "user-agent", "content-length"];
    let mut kept = tonic::codegen::http::HeaderMap::new();
    for (name, value) in md.clone().into_headers().iter() {
        let key = name.as_str();
        if key.starts_with("grpc-") || key == api_metadata::FORWARDED || TRANSPORT.contains(&key) {
            continue;
        }
        kept.append(name.clone(), value.clone());
    }
    MetadataMap::from_headers(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_callers_own_metadata_travels() {
        let mut md = MetadataMap::new();
        md.insert("grpc-timeout", "250m".parse().unwrap());
        md.insert("grpc-accept-encoding", "gzip".parse().unwrap());
        md.insert("content-type", "application/grpc".parse().unwrap());
        md.insert("te", "trailers".parse().unwrap());
        md.insert(api_metadata::FORWARDED, "3".parse().unwrap());
        md.insert("x-trace-id", "abc".parse().unwrap());
        let kept = callers_metadata(&md);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept.get("x-trace-id").unwrap(), "abc");
    }
}
