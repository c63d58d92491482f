//! Subscribers during a run, checked the way a robustness test checks watches: one per node
//! (followers included), each with its own filter, pinned to its node through the client's
//! resuming subscription while the faults come and go. After the run each is caught up,
//! stopped, and held against the committed journal read back from a healthy node.

use std::time::Duration;

use qastore_client::{Client, Start, SubscribeOptions};
use qastore_proto::v1 as pb;
use qastore_testkit::feed::journal::read_committed;
use qastore_testkit::feed::watch::{Watched, Watcher};
use qastore_testkit::feed::{check_subscription, Matcher, SubscriptionCheck};
use serde::Serialize;

use crate::cluster::ChaosCluster;
use crate::workload::{user_of, ORDER_USER};
use crate::HarnessError;

/// How long a pinned subscription keeps trying its node: longer than any fault is held and
/// the node takes to come back.
const RESUME_FOR: Duration = Duration::from_secs(120);

/// How long, after the run, a subscriber may take to catch up with the last index.
const CATCH_UP: Duration = Duration::from_secs(30);

/// What one subscriber of a run received and what the check found.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberReport {
    /// The node it was pinned to.
    pub node: u64,
    /// Its filter, in words.
    pub filter: String,
    /// The check against the journal.
    pub check: SubscriptionCheck,
    /// The error its subscription ended with during the run, if any.
    pub ended: Option<String>,
    /// Whether that error was the journal no longer holding what it needed (a loud end,
    /// allowed: a replaced node starts from a snapshot).
    pub ended_out_of_range: bool,
    /// Streams opened again after a failure.
    pub reconnects: u64,
    /// Events a resumed stream repeated, dropped by the client.
    pub repeats_dropped: u64,
    /// The log index it had everything up to when stopped.
    pub covered: u64,
    /// Whether it had caught up with the last index of the run by then.
    pub caught_up: bool,
}

/// The filters subscribers take in turn: every event, the register writes, one user's orders,
/// one register's account.
fn filter(i: usize) -> (String, SubscribeOptions) {
    let o = SubscribeOptions::new();
    match i % 4 {
        0 => ("every event".into(), o),
        1 => ("accounts".into(), o.kinds([pb::RecordKind::Accounts])),
        2 => (format!("user {ORDER_USER}"), o.users([ORDER_USER])),
        _ => {
            let user = user_of(7);
            (
                format!("accounts of user {user}"),
                o.kinds([pb::RecordKind::Accounts]).users([user]),
            )
        }
    }
}

/// A running subscriber.
#[derive(Debug)]
pub(crate) struct Subscriber {
    node: u64,
    filter: String,
    watcher: Watcher,
}

/// Starts one subscriber per node, each from the start of the log, through a client that
/// knows only that node.
pub(crate) fn start(cluster: &ChaosCluster) -> Result<Vec<Subscriber>, HarnessError> {
    let mut out = Vec::new();
    for (i, n) in cluster.nodes.values().enumerate() {
        let client = Client::new(
            &[n.api.to_string()],
            qastore_client::ClientConfig {
                client_id: format!("chaos-subscriber-{}", n.id),
                call_timeout: Duration::from_millis(1000),
                tls: cluster.client_tls().cloned(),
                ..Default::default()
            },
        )
        .map_err(|e| HarnessError(format!("subscriber client: {e}")))?;
        let (words, options) = filter(i);
        let options = options
            .start(Start::After(pb::Position {
                log_index: 0,
                ordinal: u32::MAX,
            }))
            .heartbeat_ms(200)
            .resume_for(RESUME_FOR);
        let watcher = Watcher::start(&format!("node {} ({words})", n.id), &client, options)
            .map_err(HarnessError)?;
        out.push(Subscriber {
            node: n.id,
            filter: words,
            watcher,
        });
    }
    Ok(out)
}

/// Lets every subscriber catch up with log index `through`, stops them, reads the journal
/// back from node `addr`, and checks each subscriber against it.
pub(crate) async fn finish(
    subscribers: Vec<Subscriber>,
    client: &Client,
    addr: &str,
    through: u64,
) -> Result<Vec<SubscriberReport>, HarnessError> {
    let mut watched: Vec<(u64, String, u64, Watched)> = Vec::new();
    for s in subscribers {
        let w = s
            .watcher
            .stop_at(through, CATCH_UP)
            .await
            .map_err(HarnessError)?;
        let covered = w.received.covered().index;
        watched.push((s.node, s.filter, covered, w));
    }
    let matchers = watched
        .iter()
        .map(|(_, _, _, w)| Matcher::new(&w.filter))
        .collect::<Result<Vec<_>, _>>()
        .map_err(HarnessError)?;
    let committed = read_committed(client, addr, &matchers, through, Duration::from_secs(60))
        .await
        .map_err(HarnessError)?;
    Ok(watched
        .into_iter()
        .zip(committed)
        .map(|((node, filter, covered, w), c)| SubscriberReport {
            node,
            filter,
            check: check_subscription(&w.received, &c),
            ended_out_of_range: w.ended_out_of_range,
            ended: w.ended,
            reconnects: w.reconnects,
            repeats_dropped: w.repeats_dropped,
            covered,
            caught_up: covered >= through,
        })
        .collect())
}
