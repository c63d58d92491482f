//! Reading the committed events back from one node after a run: every event from the oldest
//! the journal holds up to a given log index, split by the filters being checked. A plain
//! stream on one node, without the client's resuming, so that the read does not lean on what
//! it is used to check. Order updates are matched on their order's exchange and instrument,
//! as the node matches them.

use std::time::Duration;

use qastore_client::Client;
use qastore_exchange::feed::Position;
use qastore_proto::v1 as pb;

use super::check::{Committed, Seen};
use super::place::Placer;
use super::Matcher;
use qastore_cluster::convert::records::{outcome_from_pb, record_from_pb};

/// Reads node `addr`'s journal from the oldest event it holds until a progress frame vouches
/// for log index `through`, within `within`; answers, for each of `matchers`, the committed
/// events matching it.
pub async fn read_committed(
    client: &Client,
    addr: &str,
    matchers: &[Matcher],
    through: u64,
    within: Duration,
) -> Result<Vec<Committed>, String> {
    tokio::time::timeout(within, read(client, addr, matchers, through))
        .await
        .map_err(|_| format!("reading the journal of {addr}: not done within {within:?}"))?
}

async fn read(
    client: &Client,
    addr: &str,
    matchers: &[Matcher],
    through: u64,
) -> Result<Vec<Committed>, String> {
    let fail = |e: String| format!("reading the journal of {addr}: {e}");
    let mut feed = client.feed_at(addr).map_err(|e| fail(e.to_string()))?;
    let req = pb::SubscribeRequest {
        start: Some(pb::StartAt {
            at: Some(pb::start_at::At::Oldest(true)),
        }),
        heartbeat_ms: 100,
        ..Default::default()
    };
    let mut stream = feed
        .subscribe(req)
        .await
        .map_err(|s| fail(s.message().to_string()))?
        .into_inner();
    let mut out: Vec<Committed> = matchers.iter().map(|_| Committed::default()).collect();
    let mut first: Option<Position> = None;
    let mut placer = Placer::new(matchers.iter().any(Matcher::needs_order_places));
    loop {
        let frame = stream
            .message()
            .await
            .map_err(|s| fail(s.message().to_string()))?
            .ok_or_else(|| fail("the stream ended".into()))?;
        match frame.frame {
            Some(pb::subscribe_response::Frame::Events(batch)) => {
                for e in batch.events {
                    let Some(seen) = Seen::of(&e) else { continue };
                    first.get_or_insert(seen.position);
                    // A record the node could not decode passes no filter.
                    let Some(Ok(record)) = e.record.map(record_from_pb) else {
                        continue;
                    };
                    let place = match e.result.as_ref().and_then(outcome_from_pb) {
                        Some(outcome) => placer
                            .place(client, addr, &record, outcome)
                            .await
                            .map_err(fail)?,
                        None => None,
                    };
                    for (m, c) in matchers.iter().zip(&mut out) {
                        if m.matches(&record, place.as_ref()) {
                            c.events.push(seen);
                        }
                    }
                }
            }
            Some(pb::subscribe_response::Frame::Progress(p)) => {
                let applied = p.applied.map_or(0, |a| a.log_index);
                if applied >= through {
                    // Everything up to the node's applied index was sent; nothing before the
                    // first event received is known (the journal may have let it go).
                    let after = match first {
                        Some(f) if f.ordinal > 0 => Position::new(f.index, f.ordinal - 1),
                        Some(f) => Position::end_of(f.index.saturating_sub(1)),
                        None => Position::end_of(applied),
                    };
                    let upto = Position::end_of(applied);
                    for c in &mut out {
                        c.after = after;
                        c.through = upto;
                        c.events.retain(|e| e.position <= upto);
                    }
                    return Ok(out);
                }
            }
            _ => {}
        }
    }
}
