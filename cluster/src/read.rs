//! Reads at the consistency a client asks for, before the query runs (README.md,
//! "Consistency"; ARCHITECTURE.md, "The path of a read").
//!
//! * `LINEARIZABLE`: the leader confirms its leadership with a quorum and names the index the
//!   read must see; this node waits until it has applied that index.
//! * `BOUNDED`: served here only if this node can prove its state is at most the bound old;
//!   refused when it is older or when nothing proves its age (no recent word from a leader).
//! * `LOCAL`: served here at once.
//!
//! With `min_applied_index` the node first waits (within the call's deadline) until it has
//! applied that index, so a client reads its own writes anywhere.

use std::time::Duration;

use crate::replicated::ExchangeNode;
use qastore_proto::v1 as pb;

use crate::error::ApiError;

/// Makes `node` ready to serve a read with `options` within `timeout`; returns the applied
/// index the read will see at least.
pub async fn prepare(
    node: &ExchangeNode,
    options: Option<&pb::ReadOptions>,
    timeout: Duration,
) -> Result<u64, ApiError> {
    let default = pb::ReadOptions::default();
    let o = options.unwrap_or(&default);
    let consistency = pb::Consistency::try_from(o.consistency).map_err(|_| {
        ApiError::InvalidArgument(format!(
            "field read.consistency: unknown value {}",
            o.consistency
        ))
    })?;
    let wait_for = |index: u64| async move {
        if index == 0 {
            return Ok(node.applied_index());
        }
        node.wait_applied(index, timeout).await.map_err(|e| {
            ApiError::Unavailable(format!(
                "field read.min_applied_index: {e}; try another node or a longer deadline"
            ))
        })
    };
    match consistency {
        pb::Consistency::Unspecified | pb::Consistency::Linearizable => {
            // A planted bug for the chaos tests: a follower serving linearizable reads from
            // its own state, without asking the leader. The checker must catch it.
            #[cfg(feature = "failpoints")]
            if !node.is_leader() {
                fail::fail_point!("follower_linearizable_read_is_local", |_| Ok(
                    node.applied_index()
                ));
            }
            let index = node
                .linearizable_index(timeout)
                .await
                .map_err(ApiError::from)?;
            let index = index.max(o.min_applied_index);
            node.wait_applied(index, timeout)
                .await
                .map_err(|e| ApiError::Unavailable(format!("linearizable read: {e}")))
        }
        pb::Consistency::Bounded => {
            if o.max_staleness_ms == 0 {
                return Err(ApiError::InvalidArgument(
                    "field read.max_staleness_ms: must be positive for CONSISTENCY_BOUNDED".into(),
                ));
            }
            let applied = wait_for(o.min_applied_index).await?;
            match node.staleness() {
                None => Err(ApiError::Unavailable(format!(
                    "bounded read: node {} cannot tell how stale it is (no recent contact with a leader); \
                     read from another node or with CONSISTENCY_LINEARIZABLE",
                    node.id()
                ))),
                Some(age) if age > Duration::from_millis(o.max_staleness_ms) => {
                    Err(ApiError::Unavailable(format!(
                        "bounded read: node {} is {} ms stale, over field read.max_staleness_ms = {}",
                        node.id(),
                        age.as_millis(),
                        o.max_staleness_ms
                    )))
                }
                Some(_) => Ok(applied),
            }
        }
        pb::Consistency::Local => wait_for(o.min_applied_index).await,
    }
}
