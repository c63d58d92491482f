//! Applying several clients' writes proposed as one entry ([`Command::WriteGroup`]).
//!
//! Each write is checked against the dedup records and staged in turn, seeing what the writes
//! before it staged, exactly as if it were an entry of its own; all of them land in the engine
//! as one batch at the entry's index. A write that repeats an earlier one of the same group
//! (a client's retry that overtook its first try) is answered as a retry of it.
//!
//! [`Command::WriteGroup`]: crate::Command::WriteGroup

use std::collections::HashMap;

use qastore_lsm::{Engine, WriteBatch};

use super::{append_ops, check_dedup, ExchangeMachine, Write};
use crate::apply::EntryStager;
use crate::command::{payload_hash, Response};
use crate::dedup::{self, Check, DedupRecord};
use crate::error::{Error, Result};
use crate::feed::{journal, CommittedBatch, CommittedEvent};
use crate::keys;
use crate::record::Record;
use crate::write::EncodedWrite;

/// A write of the group that was staged: its records and where they start in the entry.
struct StagedMember {
    answer: usize,
    first_ordinal: u32,
    records: Vec<Record>,
}

impl ExchangeMachine {
    /// Applies `writes`, proposed together as the entry at `index`, with `sys` in the same
    /// engine batch; answers [`Response::Group`], one answer per write in order.
    pub(super) fn apply_group(
        &self,
        engine: &Engine,
        index: u64,
        writes: &[EncodedWrite],
        sys: WriteBatch,
    ) -> Result<Response> {
        let mut stager = EntryStager::new(engine, index, Some(&self.instruments));
        let mut answers: Vec<Response> = Vec::with_capacity(writes.len());
        let mut staged: Vec<StagedMember> = Vec::new();
        // Writes of this group already staged, by (client, request id): their hash and answer.
        let mut seen: HashMap<(&str, u64), (u64, usize)> = HashMap::new();
        for w in writes {
            let records = match w.decode_records() {
                Ok(records) => records,
                Err(e) => {
                    answers.push(Response::Refused {
                        reason: format!("the records do not decode: {e}"),
                    });
                    continue;
                }
            };
            let hash = w.payload_hash();
            if let Some(&(first_hash, at)) = seen.get(&(w.client_id.as_str(), w.request_id)) {
                answers.push(match &answers[at] {
                    Response::Written { outcomes } if first_hash == hash => Response::Duplicate {
                        original_index: index,
                        outcomes: outcomes.clone(),
                    },
                    _ => Response::RequestIdReused {
                        original_index: index,
                    },
                });
                continue;
            }
            let write = Write {
                client_id: &w.client_id,
                request_id: w.request_id,
                payload_hash: hash,
                records: &records,
                earlier_hash: Some(payload_hash),
                commit_ns: w.commit_ns,
            };
            match check_dedup(engine, &write)? {
                Check::Retry(first) => answers.push(Response::Duplicate {
                    original_index: first.log_index,
                    outcomes: first.outcomes,
                }),
                Check::Reused { original_index } => {
                    answers.push(Response::RequestIdReused { original_index })
                }
                Check::New => match stager.stage(&records) {
                    Ok(part) => {
                        dedup::remember(
                            stager.batch_mut(),
                            &w.client_id,
                            w.request_id,
                            &DedupRecord {
                                log_index: index,
                                payload_hash: hash,
                                outcomes: part.outcomes.clone(),
                            },
                        );
                        seen.insert((w.client_id.as_str(), w.request_id), (hash, answers.len()));
                        staged.push(StagedMember {
                            answer: answers.len(),
                            first_ordinal: part.first_ordinal,
                            records,
                        });
                        answers.push(Response::Written {
                            outcomes: part.outcomes,
                        });
                    }
                    Err(Error::Engine(qastore_lsm::Error::InvalidArgument(e))) => {
                        answers.push(Response::Refused {
                            reason: e.to_string(),
                        })
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        // One commit time for the entry: the leader stamps every write of a group alike.
        let commit_ns = writes.iter().map(|w| w.commit_ns).find(|&t| t != 0);
        let entry = stager.finish();
        let mut batch = entry.batch;
        if let (false, Some(t)) = (staged.is_empty(), commit_ns) {
            batch.put(keys::commit_time(index), journal::encode_time(t));
        }
        append_ops(&mut batch, &sys);
        match engine.apply(&batch, index) {
            Ok(()) => {
                self.instruments.remember(entry.new_instruments);
                self.announce_group(index, commit_ns.unwrap_or(0), staged, &answers);
                Ok(Response::Group(answers))
            }
            Err(qastore_lsm::Error::InvalidArgument(e)) => {
                // The batch as a whole is refused: nothing of the group is written, and every
                // write that would have been is refused alike, here and on every node.
                engine.apply(&sys, index)?;
                self.announce_nothing(index);
                let reason = e.to_string();
                let refused = |a: Response| match a {
                    Response::Written { .. }
                    | Response::Duplicate { .. }
                    | Response::RequestIdReused { .. }
                        if written_here(&a, index) =>
                    {
                        Response::Refused {
                            reason: reason.clone(),
                        }
                    }
                    other => other,
                };
                Ok(Response::Group(answers.into_iter().map(refused).collect()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Tells the event sink, if one is set, the events of the group's written writes.
    fn announce_group(
        &self,
        index: u64,
        commit_ns: i64,
        staged: Vec<StagedMember>,
        answers: &[Response],
    ) {
        let Some(sink) = self.sink.get() else {
            return;
        };
        let mut events = Vec::new();
        for member in staged {
            let Some(Response::Written { outcomes }) = answers.get(member.answer) else {
                continue;
            };
            for (position, (record, outcome)) in
                member.records.into_iter().zip(outcomes).enumerate()
            {
                events.push(CommittedEvent {
                    ordinal: member.first_ordinal + position as u32,
                    record,
                    outcome: *outcome,
                });
            }
        }
        let batch = (!events.is_empty()).then(|| {
            std::sync::Arc::new(CommittedBatch {
                index,
                commit_ns,
                events,
            })
        });
        sink.applied(index, batch);
    }
}

/// Whether `answer` names a write of this entry (written now, or a retry of one written now):
/// what a refused batch takes back.
fn written_here(answer: &Response, index: u64) -> bool {
    match answer {
        Response::Written { .. } => true,
        Response::Duplicate { original_index, .. }
        | Response::RequestIdReused { original_index } => *original_index == index,
        _ => false,
    }
}
