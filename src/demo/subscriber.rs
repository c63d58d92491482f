//! The demo's live subscriber: every committed event from the start of the log, through the
//! client's resuming subscription (a follower serves it), kept through the leader's kill, then
//! checked against the journal: each event once, in order, none missing.

use std::time::Duration;

use qastore_client::{Client, Start, SubscribeOptions};
use qastore_proto::v1 as pb;
use qastore_testkit::feed::journal::read_committed;
use qastore_testkit::feed::watch::Watcher;
use qastore_testkit::feed::{check_subscription, Matcher, SubscriptionCheck};

/// What the subscriber received, checked.
#[derive(Debug)]
pub struct Checked {
    /// The check against the journal.
    pub check: SubscriptionCheck,
    /// Streams opened again after the node serving it failed.
    pub reconnects: u64,
    /// Events a resumed stream repeated, dropped by the client.
    pub repeats_dropped: u64,
}

/// Starts the subscriber.
pub fn start(client: &Client) -> Result<Watcher, String> {
    let options = SubscribeOptions::new()
        .start(Start::After(pb::Position {
            log_index: 0,
            ordinal: u32::MAX,
        }))
        .heartbeat_ms(200)
        .resume_for(Duration::from_secs(60));
    Watcher::start("live subscriber", client, options)
}

/// Lets the subscriber catch up with log index `through`, stops it, reads the journal back
/// from node `addr` and checks the one against the other.
pub async fn finish(
    watcher: Watcher,
    client: &Client,
    addr: &str,
    through: u64,
) -> Result<Checked, String> {
    let watched = watcher.stop_at(through, Duration::from_secs(30)).await?;
    if let Some(e) = &watched.ended {
        return Err(format!("the live subscription ended: {e}"));
    }
    let covered = watched.received.covered().index;
    if covered < through {
        return Err(format!(
            "the live subscriber had every event only up to index {covered} of {through}"
        ));
    }
    let matcher = Matcher::new(&watched.filter)?;
    let committed = read_committed(
        client,
        addr,
        std::slice::from_ref(&matcher),
        through,
        Duration::from_secs(60),
    )
    .await?;
    let Some(committed) = committed.first() else {
        return Err("the journal read answered nothing".into());
    };
    Ok(Checked {
        check: check_subscription(&watched.received, committed),
        reconnects: watched.reconnects,
        repeats_dropped: watched.repeats_dropped,
    })
}
