//! Where a stream starts: after a position, at a time, at the oldest event the journal holds
//! (or, for ticks and trades, Parquet), at the live tail, or with the current state then
//! everything after it.

use std::time::Duration;

use qastore_exchange::feed::snapshot::{read_state, StateSnapshot};
use qastore_exchange::feed::{archive, EventFilter, Position};
use qastore_proto::v1 as pb;

use super::convert::position_from_pb;
use super::live::LiveFeed;
use crate::error::ApiError;
use crate::node::Node;

/// A checked start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Right after this position.
    After(Position),
    /// At the first batch committed at or after this time (epoch nanoseconds).
    Time(i64),
    /// At the oldest event the journal holds.
    Oldest,
    /// At the live tail.
    Tail,
    /// The current state, then every event after it.
    Snapshot,
}

/// The start a request asks for; `None` when it names none.
pub fn start_from_pb(s: Option<pb::StartAt>) -> Result<Option<Start>, ApiError> {
    use pb::start_at::At;
    let Some(at) = s.and_then(|s| s.at) else {
        return Ok(None);
    };
    let must_be_set = |field: &str| {
        ApiError::InvalidArgument(format!("field start.{field}: must be true when given"))
    };
    Ok(Some(match at {
        At::After(p) => Start::After(position_from_pb(&p)),
        At::TimeNs(t) => Start::Time(t),
        At::Oldest(true) => Start::Oldest,
        At::Oldest(false) => return Err(must_be_set("oldest")),
        At::Tail(true) => Start::Tail,
        At::Tail(false) => return Err(must_be_set("tail")),
        At::Snapshot(true) => Start::Snapshot,
        At::Snapshot(false) => return Err(must_be_set("snapshot")),
    }))
}

/// Where a stream begins: its cursor (everything up to it is not sent), and for a snapshot
/// start the state it sends first.
#[derive(Debug)]
pub struct Resolved {
    /// The stream sends events after this position.
    pub cursor: Position,
    /// The state to send first, as of the cursor's batch.
    pub state: Option<StateSnapshot>,
}

/// Resolves `start` on this node: waits for its own apply when the position is committed but
/// not applied here yet, and refuses a start whose events have left the journal.
pub async fn resolve(
    node: &Node,
    live: &LiveFeed,
    start: Start,
    filter: &EventFilter,
    timeout: Duration,
) -> Result<Resolved, ApiError> {
    let raft = &node.raft;
    match start {
        Start::After(p) => {
            let applied = raft.applied_index();
            if p.index > applied {
                wait_for(node, p, timeout).await?;
            }
            let engine = raft.engine()?;
            let filter = filter.clone();
            blocking(move || {
                archive::locate(&engine, p, &filter)?
                    .map_err(|earliest| too_old(format!("start {p}"), earliest))?;
                Ok(p)
            })
            .await
            .map(cursor_only)
        }
        Start::Time(t) => {
            let engine = raft.engine()?;
            let filter = filter.clone();
            blocking(move || {
                let applied = engine.applied_index();
                archive::time_start(&engine, t, &filter, applied)?
                    .map_err(|earliest| too_old(format!("start time {t}"), earliest))
            })
            .await
            .map(cursor_only)
        }
        Start::Oldest => {
            let engine = raft.engine()?;
            let filter = filter.clone();
            blocking(move || Ok(archive::oldest_start(&engine, &filter)?))
                .await
                .map(cursor_only)
        }
        Start::Tail => Ok(cursor_only(Position::end_of(
            raft.applied_index().max(live.mark().index),
        ))),
        Start::Snapshot => {
            let engine = raft.engine()?;
            let filter = filter.clone();
            let state = blocking(move || Ok(read_state(&engine, &filter)?)).await?;
            Ok(Resolved {
                cursor: Position::end_of(state.applied_index),
                state: Some(state),
            })
        }
    }
}

fn cursor_only(cursor: Position) -> Resolved {
    Resolved {
        cursor,
        state: None,
    }
}

fn too_old(what: String, earliest: Position) -> ApiError {
    ApiError::OutOfRange {
        message: format!("{what} is older than the journal holds"),
        earliest,
        last_delivered: None,
    }
}

/// Waits until this node has applied `p`'s batch; refuses a position beyond what the cluster
/// has committed.
async fn wait_for(node: &Node, p: Position, timeout: Duration) -> Result<(), ApiError> {
    let raft = &node.raft;
    let deadline = tokio::time::Instant::now() + timeout;
    // A follower far behind refuses before anything else: one that restarted a moment ago
    // may not even hear from the leader for a while, so neither asking the leader nor its
    // own apply would answer soon. The leader is never left behind by the others: it waits
    // for its own apply.
    if !raft.is_leader() {
        catching_up(raft.applied_index(), p)?;
        if raft.applied_index() < p.index {
            out_of_touch(raft.staleness(), p)?;
        }
    }
    let committed = raft.status().committed.unwrap_or(0);
    if p.index > committed {
        // Only the leader knows whether the position is committed. A position a client
        // resumes from was sent by a node that had applied it, so it is committed: when this
        // node applies it before the leader answers (right after the leader was lost, a new
        // leader's first commit brings it here before a read-index round can succeed), that
        // settles it.
        let confirmed = tokio::select! {
            applied = raft.wait_applied(p.index, timeout) => {
                if applied.is_ok() {
                    return Ok(());
                }
                None
            }
            known = raft.linearizable_index(timeout) => Some(known),
        };
        match confirmed {
            Some(Ok(known)) if p.index > known => {
                return Err(ApiError::InvalidArgument(format!(
                    "field start.after: position {p} is beyond the last committed log index \
                     {known}"
                )));
            }
            Some(Ok(_)) => {}
            // No leader to ask right now: this node's own apply decides in the time left.
            Some(Err(e)) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                return match raft.wait_applied(p.index, left).await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(ApiError::Unavailable(format!(
                        "this node cannot confirm that position {p} is committed ({e}); try \
                         another node"
                    ))),
                };
            }
            None => {
                return Err(ApiError::Unavailable(format!(
                    "this node has not applied position {p} in time; try another node"
                )))
            }
        }
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    raft.wait_applied(p.index, left).await?;
    Ok(())
}

/// A follower this many entries short of the position a stream starts after is catching up
/// (it restarted a moment ago, or was cut off): rather than hold the stream until it has
/// applied them (seconds, after a restart), it refuses, and the client opens the stream on
/// another node at once. A follower a few entries short, and the leader, wait for their own
/// apply.
const CATCHING_UP_ENTRIES: u64 = 32;

/// Refuses a start after `p` on a node that has applied only up to `applied`, when that is far
/// behind (see [`CATCHING_UP_ENTRIES`]).
fn catching_up(applied: u64, p: Position) -> Result<(), ApiError> {
    if p.index.saturating_sub(applied) > CATCHING_UP_ENTRIES {
        return Err(ApiError::Unavailable(format!(
            "this node is catching up: it has applied up to log index {applied}, the stream \
             starts after {p}; another node can serve it now"
        )));
    }
    Ok(())
}

/// A follower whose state is older than this (or of unknown age) is out of touch with the
/// leader: a few heartbeats (100 ms apart by default) went by without it catching up.
const OUT_OF_TOUCH: Duration = Duration::from_millis(300);

/// Refuses a start after `p`, not yet applied here, on a follower out of touch with the
/// leader (it restarted a moment ago and the leader has not reached it again, or it is cut
/// off): it could not say when it will have applied `p`.
fn out_of_touch(staleness: Option<Duration>, p: Position) -> Result<(), ApiError> {
    match staleness {
        Some(age) if age <= OUT_OF_TOUCH => Ok(()),
        _ => Err(ApiError::Unavailable(format!(
            "this node has not heard from the leader lately and has not applied {p} yet; \
             another node can serve the stream now"
        ))),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_far_behind_the_start_refuses_and_one_close_to_it_waits() {
        let p = Position::new(1_000, 7);
        assert!(catching_up(1_000, p).is_ok());
        assert!(catching_up(1_000 - CATCHING_UP_ENTRIES, p).is_ok());
        let e = catching_up(1_000 - CATCHING_UP_ENTRIES - 1, p).unwrap_err();
        assert!(matches!(e, ApiError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("catching up"), "{e}");
    }

    #[test]
    fn a_follower_out_of_touch_with_the_leader_refuses_a_start_it_has_not_applied() {
        let p = Position::new(1_000, 7);
        assert!(out_of_touch(Some(Duration::from_millis(20)), p).is_ok());
        assert!(out_of_touch(Some(OUT_OF_TOUCH), p).is_ok());
        for age in [None, Some(OUT_OF_TOUCH + Duration::from_millis(1))] {
            let e = out_of_touch(age, p).unwrap_err();
            assert!(matches!(e, ApiError::Unavailable(_)), "{e}");
        }
    }
}
