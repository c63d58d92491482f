//! Gathering clients' writes into shared log entries on the leader.
//!
//! Every log entry costs the same fixed work on every node whatever it carries (proposing it,
//! framing it in the WAL, replicating it, the applied index and commit time written at apply),
//! so under load many small writes spend most of the cluster's CPU on entries rather than on
//! records. A write proposes its own entry while fewer than `write_groups_in_flight` entries of
//! writes are on their way; otherwise it waits in a queue, and as soon as one of those entries
//! is applied, everything queued meanwhile is proposed as one [`Command::WriteGroup`]. A lone
//! writer therefore never waits for a group, and a busy leader proposes fewer, larger entries.
//!
//! Each write of a group keeps its own request id, dedup record and answer; writes that ask to
//! be held by every voter are never grouped. A group is proposed by a task of its own, so a
//! client that goes away does not take the other writes' answers with it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use qastore_exchange::{Ack, Command, EncodedWrite, Response};
use qastore_raft::{Admitted, Request, WriteOutcome};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::metrics;
use crate::replicated::{write_request, ExchangeNode};

/// The most records one group carries (a single write may carry up to the batch limit alone).
const MAX_GROUP_RECORDS: usize = 4096;
/// The most archived record bytes one group carries.
const MAX_GROUP_BYTES: usize = 4 << 20;

/// What one write of a group is answered.
pub type GroupedOutcome = Result<WriteOutcome<Response>, ApiError>;

/// A write waiting for its group.
struct Member {
    write: EncodedWrite,
    admitted: Admitted,
    received: std::time::Instant,
    deadline: Instant,
    records: usize,
    reply: oneshot::Sender<GroupedOutcome>,
}

/// What a write arriving does.
enum Turn {
    /// Waits for a group.
    Queued,
    /// Is proposed alone, by its caller.
    Alone(Member),
    /// Is proposed with the writes queued before it.
    Group(Vec<Member>),
}

#[derive(Default)]
struct State {
    in_flight: usize,
    queue: Vec<Member>,
}

impl std::fmt::Debug for WriteGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("WriteGroups")
            .field("max_in_flight", &self.max_in_flight)
            .field("in_flight", &state.in_flight)
            .field("queued", &state.queue.len())
            .finish()
    }
}

/// The leader's write proposer: proposes writes alone while few are on their way, in groups
/// when many are (see the module docs).
pub struct WriteGroups {
    raft: Arc<ExchangeNode>,
    max_in_flight: usize,
    max_writes: usize,
    state: Mutex<State>,
}

impl WriteGroups {
    /// A proposer over `raft` letting `max_in_flight` entries of writes be on their way before
    /// it groups writes (0: never groups), at most `max_writes` writes to a group.
    pub fn new(
        raft: Arc<ExchangeNode>,
        max_in_flight: usize,
        max_writes: usize,
    ) -> Arc<WriteGroups> {
        Arc::new(WriteGroups {
            raft,
            max_in_flight,
            max_writes: max_writes.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Proposes `write` (checked and admitted by the caller, `records` records long), alone
    /// or in a group, and waits for its answer until `timeout` has passed; `received` is when
    /// its call arrived.
    pub async fn write(
        self: &Arc<Self>,
        admitted: Admitted,
        write: EncodedWrite,
        records: usize,
        timeout: Duration,
        received: std::time::Instant,
    ) -> GroupedOutcome {
        if self.max_in_flight == 0 || write.ack == Ack::All {
            return self.propose_alone(admitted, write, timeout, received).await;
        }
        let deadline = Instant::now() + timeout;
        let (reply, answer) = oneshot::channel();
        let member = Member {
            write,
            admitted,
            received,
            deadline,
            records,
            reply,
        };
        let turn = {
            let mut state = self.state.lock();
            if state.in_flight >= self.max_in_flight {
                state.queue.push(member);
                Turn::Queued
            } else {
                state.in_flight += 1;
                let alone = state.queue.is_empty();
                state.queue.push(member);
                let mut group = take_group(&mut state.queue, self.max_writes);
                match group.pop() {
                    Some(member) if alone => Turn::Alone(member),
                    Some(last) => {
                        group.push(last);
                        Turn::Group(group)
                    }
                    None => {
                        state.in_flight -= 1;
                        Turn::Queued
                    }
                }
            }
        };
        match turn {
            Turn::Queued => {}
            Turn::Alone(member) => {
                // Nobody waits on this write but its own caller: propose it here, without a
                // task of its own.
                let slot = Slot(self.clone());
                let outcome = self
                    .propose_alone(member.admitted, member.write, timeout, received)
                    .await;
                drop(slot);
                return outcome;
            }
            Turn::Group(group) => {
                let slot = Slot(self.clone());
                tokio::spawn(async move {
                    slot.0.propose_group(group).await;
                    drop(slot);
                });
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ApiError::Unavailable(
                "the write's group was dropped before it was answered (is the node stopping?); retry with the same request id"
                    .into(),
            )),
            Err(_) => Err(ApiError::DeadlineExceeded(
                "the write was not committed in time; retry with the same request id".into(),
            )),
        }
    }

    async fn propose_alone(
        &self,
        admitted: Admitted,
        write: EncodedWrite,
        timeout: Duration,
        received: std::time::Instant,
    ) -> GroupedOutcome {
        let (request, all_voters) = write_request(write.stamped(now_ns()));
        Ok(self
            .raft
            .write_admitted(admitted, request, all_voters, timeout, received)
            .await?)
    }

    /// Proposes `group` as one entry and answers each of its writes.
    async fn propose_group(&self, group: Vec<Member>) {
        // A write whose caller gave up is left out: the caller was told it may retry.
        let mut group: Vec<Member> = group.into_iter().filter(|m| !m.reply.is_closed()).collect();
        if group.len() <= 1 {
            if let Some(m) = group.pop() {
                let timeout = m.deadline.saturating_duration_since(Instant::now());
                let outcome = self
                    .propose_alone(m.admitted, m.write, timeout, m.received)
                    .await;
                let _ = m.reply.send(outcome);
            }
            return;
        }
        let stamp = now_ns();
        let deadline = group
            .iter()
            .map(|m| m.deadline)
            .max()
            .unwrap_or_else(Instant::now);
        let received: Vec<std::time::Instant> = group.iter().map(|m| m.received).collect();
        let mut replies = Vec::with_capacity(group.len());
        let mut writes = Vec::with_capacity(group.len());
        let mut admitted = None;
        for m in group {
            replies.push(m.reply);
            writes.push(m.write.stamped(stamp));
            admitted.get_or_insert(m.admitted);
        }
        let Some(admitted) = admitted else { return };
        metrics::write_group(writes.len());
        let request = Request::from_bytes(Command::WriteGroup(writes).to_bytes());
        let timeout = deadline.saturating_duration_since(Instant::now());
        let result = self
            .raft
            .write_group_admitted(admitted, request, timeout, &received)
            .await;
        match result {
            Ok(out) => match out.response {
                Response::Group(answers) if answers.len() == replies.len() => {
                    for (reply, response) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(WriteOutcome {
                            log_index: out.log_index,
                            term: out.term,
                            response,
                            all_acked: None,
                            stages: out.stages.clone(),
                        }));
                    }
                }
                other => {
                    let e = ApiError::Internal(format!(
                        "a group of {} writes was answered {other:?}",
                        replies.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            },
            Err(e) => {
                let e = ApiError::from(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// An entry of writes was applied (or failed): hands its place to the writes queued
    /// meanwhile, as a group of their own, or frees it.
    fn release(self: &Arc<Self>) {
        let group = {
            let mut state = self.state.lock();
            let group = take_group(&mut state.queue, self.max_writes);
            if group.is_empty() {
                state.in_flight = state.in_flight.saturating_sub(1);
                return;
            }
            group
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let slot = Slot(self.clone());
                runtime.spawn(async move {
                    slot.0.propose_group(group).await;
                    drop(slot);
                });
            }
            // No runtime (the node is being torn down): the queued writes are answered that
            // their group was dropped.
            Err(_) => {
                let mut state = self.state.lock();
                state.in_flight = state.in_flight.saturating_sub(1);
                drop(state);
                drop(group);
            }
        }
    }
}

/// One of the `write_groups_in_flight` places, held while an entry of writes is on its way;
/// given back (or handed on to the queued writes) when dropped, however its holder ends.
struct Slot(Arc<WriteGroups>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Takes from the front of `queue` the writes of the next group (see [`group_len`]).
fn take_group(queue: &mut Vec<Member>, max_writes: usize) -> Vec<Member> {
    let n = group_len(
        queue.iter().map(|m| (m.records, m.write.records.len())),
        max_writes,
    );
    if n == queue.len() {
        std::mem::take(queue)
    } else {
        queue.drain(..n).collect()
    }
}

/// How many of the queued writes, given as (records, archived bytes) in queue order, the next
/// group takes: as many as fit its limits (`max_writes` of them at most), and at least one
/// however large.
fn group_len(writes: impl Iterator<Item = (usize, usize)>, max_writes: usize) -> usize {
    let (mut records, mut bytes, mut n) = (0, 0, 0);
    for (r, b) in writes {
        let fits =
            n < max_writes && records + r <= MAX_GROUP_RECORDS && bytes + b <= MAX_GROUP_BYTES;
        if n > 0 && !fits {
            break;
        }
        records += r;
        bytes += b;
        n += 1;
    }
    n
}

/// The leader's clock, stamped on a write as its commit time.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_takes_what_fits_its_limits_and_never_nothing() {
        assert_eq!(group_len(std::iter::empty(), 64), 0);
        assert_eq!(group_len(std::iter::repeat_n((1, 100), 10), 64), 10);
        assert_eq!(group_len(std::iter::repeat_n((1, 100), 100), 64), 64);
        assert_eq!(group_len(std::iter::repeat_n((1, 100), 100), 1), 1);
        // 40 writes of 100 records fit 4,096 records; the 41st waits for the next group.
        assert_eq!(group_len(std::iter::repeat_n((100, 20_000), 50), 64), 40);
        assert_eq!(group_len([(10_000, 64), (1, 64)].into_iter(), 64), 1);
        assert_eq!(group_len([(1, 64), (10_000, 64)].into_iter(), 64), 1);
        assert_eq!(group_len([(1, MAX_GROUP_BYTES), (1, 1)].into_iter(), 64), 1);
    }
}
