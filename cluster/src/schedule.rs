//! System commands on a schedule: the leader proposes the conversion of closed trading days to
//! Parquet and retention runs; every node carries them out when it applies them.
//!
//! A closed day that received rows after its conversion (late rows) is pending again: the same
//! conversion command, applied, moves just those rows into the partition's next part file.
//!
//! Only the decision of *when* uses the leader's clock. What is done is in the log entry (the
//! trading day to convert, the explicit cut-offs), so every replica does the same thing at the
//! same point of the log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use qastore_exchange::consumer;
use qastore_exchange::keys::Stream;
use qastore_exchange::olap::{self, RetentionPolicy};
use qastore_exchange::{Command, StreamKind, SystemCommand};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::replicated::{request, ExchangeNode};

/// Conversions proposed per stream and round, so a long backlog does not hold the log.
const CONVERSIONS_PER_ROUND: usize = 4;

/// How long one scheduled command may take to commit and apply (a conversion of a large day
/// included) before the round gives up; the next round proposes it again.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(600);

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What is due now: conversions of closed days not yet converted or with late rows, and a
/// retention run if the cut-offs moved since the last one proposed.
pub fn due(
    raft: &ExchangeNode,
    now: i64,
    last_retention: &Option<RetentionPolicy>,
) -> qastore_exchange::Result<Vec<SystemCommand>> {
    let engine = match raft.engine() {
        Ok(e) => e,
        Err(_) => return Ok(Vec::new()),
    };
    let calendar = raft.app().calendar();
    let settings = raft.app().settings();
    let mut out = Vec::new();
    if settings.olap_conversion {
        let margin = i64::from(settings.convert_after_minutes) * 60 * 1_000_000_000;
        for (stream, kind) in [
            (Stream::Ticks, StreamKind::Ticks),
            (Stream::Trades, StreamKind::Trades),
        ] {
            for day in olap::pending_days(&engine, stream)?
                .into_iter()
                .filter(|d| calendar.trading_day_end(*d).saturating_add(margin) <= now)
                .take(CONVERSIONS_PER_ROUND)
            {
                out.push(SystemCommand::ConvertDay {
                    stream: kind,
                    trading_day: day,
                });
            }
        }
    }
    let today = calendar.trading_day_at(now);
    let policy = settings
        .retention
        .policy(&calendar, today, engine.applied_index());
    // What the run would really drop once durable consumers hold the journal back, so a
    // run they would make a no-op is not proposed.
    let held = RetentionPolicy {
        drop_journal_before: consumer::hold_journal(
            &engine,
            policy.drop_journal_before,
            consumer::hard_cutoff(
                engine.applied_index() + 1,
                settings.consumer_max_held_entries,
            ),
        )?
        .cutoff,
        ..policy
    };
    if policy != RetentionPolicy::default()
        && last_retention.as_ref() != Some(&policy)
        && olap::would_drop(&engine, held)?
    {
        out.push(SystemCommand::Retain {
            drop_days_before: policy.drop_days_before,
            drop_journal_before: policy.drop_journal_before,
        });
    }
    Ok(out)
}

/// Starts the scheduling task of node `raft`; it proposes only while the node is leader and
/// ends when `stop` turns true.
pub fn spawn(raft: Arc<ExchangeNode>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(raft.config().raft.schedule_interval_secs);
        let mut last_retention: Option<RetentionPolicy> = None;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(every) => {}
            }
            if !raft.is_leader() {
                last_retention = None;
                continue;
            }
            let commands = {
                let raft = raft.clone();
                let last = last_retention;
                tokio::task::spawn_blocking(move || due(&raft, now_nanos(), &last)).await
            };
            let commands = match commands {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not work out the scheduled commands");
                    continue;
                }
                Err(_) => continue,
            };
            for cmd in commands {
                if let SystemCommand::Retain {
                    drop_days_before,
                    drop_journal_before,
                } = &cmd
                {
                    last_retention = Some(RetentionPolicy {
                        drop_days_before: *drop_days_before,
                        drop_journal_before: *drop_journal_before,
                    });
                }
                tracing::info!(command = ?cmd, "proposing a scheduled command");
                let proposed = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    r = raft.propose(request(&Command::System(cmd)), PROPOSE_TIMEOUT) => r,
                };
                if let Err(e) = proposed {
                    tracing::warn!(error = %e, "a scheduled command was not committed");
                    break;
                }
            }
        }
    })
}
