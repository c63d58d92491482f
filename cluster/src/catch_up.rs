//! Waiting for a new learner to catch up: to have applied, by its own report, every entry up
//! to the one that added it. Holding the log is not enough: a learner that received thousands
//! of entries may still be applying them, and would serve old data if promoted and read from.

use std::time::{Duration, Instant};

use qastore_proto::v1 as pb;
use tonic::Request;

use crate::error::ApiError;
use crate::node::Node;

/// How often the learner is asked for its applied index.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long one status call to the learner may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits until learner `id`, whose client API is at `api_addr`, reports an applied index of
/// at least `target`, or until `deadline`; the error says how far it got.
pub async fn wait_applied(
    node: &Node,
    id: u64,
    api_addr: &str,
    target: u64,
    started: Instant,
    deadline: Instant,
) -> Result<(), ApiError> {
    loop {
        let last = match applied_index(node, id, api_addr).await {
            Ok(applied) if applied >= target => {
                tracing::info!(
                    learner = id,
                    applied,
                    target,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "learner caught up"
                );
                return Ok(());
            }
            Ok(applied) => format!("it has applied {applied} of {target}"),
            Err(e) => format!("its status at {api_addr} could not be read: {e}"),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(ApiError::DeadlineExceeded(format!(
                "field wait_caught_up_ms: learner {id} did not catch up within {} ms ({last}); \
                 it stays a learner",
                deadline.saturating_duration_since(started).as_millis()
            )));
        }
        tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
    }
}

/// Learner `id`'s applied index, as it reports it.
async fn applied_index(node: &Node, id: u64, api_addr: &str) -> Result<u64, String> {
    let mut admin = node.peers.admin(api_addr).map_err(|e| e.to_string())?;
    let mut req = Request::new(pb::NodeStatusRequest {});
    req.set_timeout(ASK_TIMEOUT);
    let status = match tokio::time::timeout(ASK_TIMEOUT, admin.get_node_status(req)).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) => return Err(format!("{:?}: {}", s.code(), s.message())),
        Err(_) => return Err(format!("no answer within {} ms", ASK_TIMEOUT.as_millis())),
    };
    if status.node_id != id || status.cluster_id != node.config.cluster_id {
        return Err(format!(
            "node {} of cluster {:?} answers there, not node {id}",
            status.node_id, status.cluster_id
        ));
    }
    Ok(status.applied_index.unwrap_or(0))
}
