use qastore_lsm::vfs::OsVfs;
use qastore_lsm::EngineConfig;

use super::*;
use crate::command::{Ack, WriteCommand};
use crate::record::samples;

fn open_engine(dir: &std::path::Path) -> Engine {
    Engine::open(OsVfs::shared(), dir.join("db"), EngineConfig::default()).unwrap()
}

/// A system batch like the replication layer's: one key saying which entry was applied.
fn marker(index: u64) -> WriteBatch {
    let mut sys = WriteBatch::new();
    sys.put(setting_key("applied"), Bytes::from(index.to_string()));
    sys
}

fn applied_marker(engine: &Engine) -> Option<Bytes> {
    engine.get(&setting_key("applied")).unwrap()
}

fn write(machine: &ExchangeMachine, engine: &Engine, index: u64, cmd: &WriteCommand) -> Response {
    let cmd = Command::Write(cmd.clone());
    machine
        .apply(engine, index, EntryContent::Command(&cmd), marker(index))
        .unwrap()
}

fn system(machine: &ExchangeMachine, engine: &Engine, index: u64, cmd: SystemCommand) -> Response {
    let cmd = Command::System(cmd);
    machine
        .apply(engine, index, EntryContent::Command(&cmd), marker(index))
        .unwrap()
}

#[test]
fn a_write_is_applied_once_and_its_retry_gets_the_first_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let cmd = WriteCommand::new("gw-1", 42, Ack::Quorum, samples::records());

    let Response::Written { outcomes } = write(&machine, &engine, 1, &cmd) else {
        panic!("the first write is applied");
    };
    assert_eq!(outcomes.len(), cmd.records.len());
    assert_eq!(applied_marker(&engine), Some(Bytes::from("1")));

    let retry = write(&machine, &engine, 2, &cmd);
    assert_eq!(
        retry,
        Response::Duplicate {
            original_index: 1,
            outcomes
        }
    );
    // The retry's entry still counts: its system batch landed.
    assert_eq!(applied_marker(&engine), Some(Bytes::from("2")));
}

#[test]
fn a_request_id_reused_with_another_payload_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let records = samples::records();
    let first = WriteCommand::new("gw-1", 7, Ack::Quorum, records.clone());
    assert!(matches!(
        write(&machine, &engine, 1, &first),
        Response::Written { .. }
    ));
    let other = WriteCommand::new("gw-1", 7, Ack::Quorum, records[..1].to_vec());
    assert_eq!(
        write(&machine, &engine, 2, &other),
        Response::RequestIdReused { original_index: 1 }
    );
    // Another client may use the same number.
    let elsewhere = WriteCommand::new("gw-2", 7, Ack::All, records[..1].to_vec());
    assert!(matches!(
        write(&machine, &engine, 3, &elsewhere),
        Response::Written { .. }
    ));
}

#[test]
fn cluster_settings_take_effect_and_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    assert_eq!(machine.settings().dedup_window_entries, 1_000_000);

    let changed = system(
        &machine,
        &engine,
        1,
        SystemCommand::SetClusterSettings {
            toml: "dedup_window_entries = 5\nolap_conversion = false\n".into(),
        },
    );
    assert_eq!(changed, Response::SettingsChanged);
    assert_eq!(machine.settings().dedup_window_entries, 5);
    assert!(!machine.settings().olap_conversion);

    let refused = system(
        &machine,
        &engine,
        2,
        SystemCommand::SetClusterSettings {
            toml: "dedup_window_entries = 0".into(),
        },
    );
    assert!(matches!(refused, Response::Refused { .. }), "{refused:?}");
    assert_eq!(machine.settings().dedup_window_entries, 5);
    let bad_calendar = system(
        &machine,
        &engine,
        3,
        SystemCommand::SetCalendar {
            toml: "not a calendar".into(),
        },
    );
    assert!(matches!(bad_calendar, Response::Refused { .. }));
    assert_eq!(applied_marker(&engine), Some(Bytes::from("3")));

    assert_eq!(
        ExchangeMachine::open(&engine).unwrap().settings(),
        machine.settings()
    );
}

#[test]
fn request_ids_are_forgotten_past_the_dedup_window() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    system(
        &machine,
        &engine,
        1,
        SystemCommand::SetClusterSettings {
            toml: "dedup_window_entries = 4".into(),
        },
    );
    let cmd = WriteCommand::new("gw-1", 1, Ack::Quorum, samples::records());
    assert!(matches!(
        write(&machine, &engine, 2, &cmd),
        Response::Written { .. }
    ));
    for index in 3..DEDUP_SWEEP_EVERY - 1 {
        machine
            .apply(&engine, index, EntryContent::NoCommand, marker(index))
            .unwrap();
    }
    assert!(matches!(
        write(&machine, &engine, DEDUP_SWEEP_EVERY - 1, &cmd),
        Response::Duplicate { .. }
    ));
    // The sweep at a multiple of the period drops ids older than the window.
    let swept = machine
        .apply(
            &engine,
            DEDUP_SWEEP_EVERY,
            EntryContent::NoCommand,
            marker(DEDUP_SWEEP_EVERY),
        )
        .unwrap();
    assert_eq!(swept, Response::Nothing);
    assert!(matches!(
        write(&machine, &engine, DEDUP_SWEEP_EVERY + 1, &cmd),
        Response::Written { .. }
    ));
}

#[test]
fn an_undecodable_entry_is_refused_and_still_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let err = crate::record::decode::<Command>(&[1, 2, 3]).unwrap_err();
    let r = machine
        .apply(&engine, 1, EntryContent::Undecodable(&err), marker(1))
        .unwrap();
    assert!(matches!(r, Response::Refused { .. }), "{r:?}");
    assert_eq!(applied_marker(&engine), Some(Bytes::from("1")));
}

fn write_encoded(
    machine: &ExchangeMachine,
    engine: &Engine,
    index: u64,
    w: &crate::EncodedWrite,
) -> Response {
    let cmd = Command::EncodedWrite(w.clone());
    machine
        .apply(engine, index, EntryContent::Command(&cmd), marker(index))
        .unwrap()
}

#[test]
fn a_write_archived_once_is_applied_once_and_its_retry_gets_the_first_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let records = samples::records();
    let w = crate::EncodedWrite::new("gw-1", 42, Ack::Quorum, records.clone()).unwrap();
    let Response::Written { outcomes } = write_encoded(&machine, &engine, 1, &w) else {
        panic!("the first write is applied");
    };
    assert_eq!(outcomes.len(), records.len());
    assert_eq!(
        write_encoded(&machine, &engine, 2, &w),
        Response::Duplicate {
            original_index: 1,
            outcomes
        }
    );
    let other = crate::EncodedWrite::new("gw-1", 42, Ack::Quorum, records[..1].to_vec()).unwrap();
    assert_eq!(
        write_encoded(&machine, &engine, 3, &other),
        Response::RequestIdReused { original_index: 1 }
    );
}

#[test]
fn a_retry_of_a_write_logged_in_the_earlier_format_is_still_a_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let records = samples::records();
    let earlier = WriteCommand::new("gw-1", 5, Ack::Quorum, records.clone());
    let Response::Written { outcomes } = write(&machine, &engine, 1, &earlier) else {
        panic!("the first write is applied");
    };
    let retry = crate::EncodedWrite::new("gw-1", 5, Ack::Quorum, records.clone()).unwrap();
    assert_ne!(retry.payload_hash(), earlier.payload_hash);
    assert_eq!(
        write_encoded(&machine, &engine, 2, &retry),
        Response::Duplicate {
            original_index: 1,
            outcomes
        }
    );
    let other = crate::EncodedWrite::new("gw-1", 5, Ack::Quorum, records[..2].to_vec()).unwrap();
    assert_eq!(
        write_encoded(&machine, &engine, 3, &other),
        Response::RequestIdReused { original_index: 1 }
    );
}

#[test]
fn records_that_do_not_decode_are_refused_and_the_entry_still_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let mut w = crate::EncodedWrite::new("gw-1", 1, Ack::Quorum, samples::records()).unwrap();
    w.records = b"not an archive".to_vec();
    let answer = write_encoded(&machine, &engine, 1, &w);
    assert!(
        matches!(&answer, Response::Refused { reason } if reason.contains("do not decode")),
        "{answer:?}"
    );
    assert_eq!(applied_marker(&engine), Some(Bytes::from("1")));
    assert!(crate::query::Queries::new(&engine)
        .orders("u1001", false, false)
        .unwrap()
        .is_empty());
}

mod consumers {
    use super::*;
    use crate::consumer::{self, ConsumerState};
    use crate::feed::{journal, Position};

    fn create(machine: &ExchangeMachine, engine: &Engine, index: u64, name: &str) -> Response {
        let cmd = SystemCommand::CreateConsumer {
            name: name.into(),
            cursor: Position::end_of(index - 1),
            created_at_ns: 1_000 + index as i64,
        };
        system(machine, engine, index, cmd)
    }

    fn ack(
        machine: &ExchangeMachine,
        engine: &Engine,
        index: u64,
        name: &str,
        position: Position,
    ) -> Response {
        let cmd = SystemCommand::AckConsumer {
            name: name.into(),
            position,
        };
        system(machine, engine, index, cmd)
    }

    fn cursor_of(response: &Response) -> Position {
        match response {
            Response::Consumer(c) => c.cursor,
            other => panic!("not a consumer: {other:?}"),
        }
    }

    fn write_batch(machine: &ExchangeMachine, engine: &Engine, index: u64) {
        let cmd = WriteCommand::new("gw", index, Ack::Quorum, samples::records());
        assert!(matches!(
            write(machine, engine, index, &cmd),
            Response::Written { .. }
        ));
    }

    fn retain_journal(
        machine: &ExchangeMachine,
        engine: &Engine,
        index: u64,
        before: u64,
    ) -> Response {
        let cmd = SystemCommand::Retain {
            drop_days_before: None,
            drop_journal_before: Some(before),
        };
        system(machine, engine, index, cmd)
    }

    #[test]
    fn a_consumer_is_created_once_and_creating_it_again_answers_it_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        let first = create(&machine, &engine, 3, "risk");
        let expected = ConsumerState {
            name: "risk".into(),
            cursor: Position::end_of(2),
            created_at_ns: 1_003,
            expired: false,
        };
        assert_eq!(first, Response::Consumer(expected.clone()));
        assert_eq!(create(&machine, &engine, 4, "risk"), first);
        assert_eq!(consumer::get(&engine, "risk").unwrap(), Some(expected));
        assert_eq!(applied_marker(&engine), Some(Bytes::from("4")));
    }

    #[test]
    fn an_ack_moves_the_cursor_forward_and_never_back() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        write_batch(&machine, &engine, 1);
        create(&machine, &engine, 2, "risk");
        write_batch(&machine, &engine, 3);
        let moved = ack(&machine, &engine, 4, "risk", Position::new(3, 2));
        assert_eq!(cursor_of(&moved), Position::new(3, 2));
        let back = ack(&machine, &engine, 5, "risk", Position::new(1, 0));
        assert_eq!(cursor_of(&back), Position::new(3, 2));
        assert_eq!(
            consumer::get(&engine, "risk").unwrap().unwrap().cursor,
            Position::new(3, 2)
        );
    }

    #[test]
    fn an_ack_of_an_unknown_consumer_or_beyond_the_log_is_refused_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        assert_eq!(
            ack(&machine, &engine, 1, "nobody", Position::new(0, 0)),
            Response::UnknownConsumer {
                name: "nobody".into()
            }
        );
        create(&machine, &engine, 2, "risk");
        let Response::Refused { reason } = ack(&machine, &engine, 3, "risk", Position::new(3, 0))
        else {
            panic!("an ack beyond the log is refused");
        };
        assert!(reason.starts_with("field position: "), "{reason}");
        assert_eq!(
            consumer::get(&engine, "risk").unwrap().unwrap().cursor,
            Position::end_of(1)
        );
        let bad = SystemCommand::CreateConsumer {
            name: "no spaces".into(),
            cursor: Position::end_of(0),
            created_at_ns: 0,
        };
        let Response::Refused { reason } = system(&machine, &engine, 4, bad) else {
            panic!("a bad name is refused");
        };
        assert!(reason.starts_with("field name: "), "{reason}");
        assert_eq!(consumer::list(&engine).unwrap().len(), 1);
    }

    #[test]
    fn a_deleted_consumer_is_gone_and_deleting_it_again_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        create(&machine, &engine, 1, "risk");
        let delete = || SystemCommand::DeleteConsumer {
            name: "risk".into(),
        };
        assert_eq!(
            system(&machine, &engine, 2, delete()),
            Response::ConsumerDeleted { existed: true }
        );
        assert_eq!(consumer::get(&engine, "risk").unwrap(), None);
        assert_eq!(
            system(&machine, &engine, 3, delete()),
            Response::ConsumerDeleted { existed: false }
        );
    }

    #[test]
    fn retention_keeps_the_events_a_live_consumer_has_not_acknowledged() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        write_batch(&machine, &engine, 1);
        create(&machine, &engine, 2, "risk");
        write_batch(&machine, &engine, 3);
        write_batch(&machine, &engine, 4);
        ack(&machine, &engine, 5, "risk", Position::new(3, 4));
        // Retention asks for everything before 5 to go: batch 3, which "risk" has not finished,
        // is kept whole.
        let Response::Retained {
            consumers_expired, ..
        } = retain_journal(&machine, &engine, 6, 5)
        else {
            panic!("retention runs");
        };
        assert_eq!(consumers_expired, 0);
        assert_eq!(
            journal::earliest(&engine).unwrap(),
            Some(Position::new(3, 0))
        );
        assert!(journal::commit_time(&engine, 1).unwrap().is_none());
        // Deleted, it holds nothing back.
        system(
            &machine,
            &engine,
            7,
            SystemCommand::DeleteConsumer {
                name: "risk".into(),
            },
        );
        retain_journal(&machine, &engine, 8, 5);
        assert_eq!(journal::earliest(&engine).unwrap(), None);
    }

    #[test]
    fn a_consumer_past_the_hard_limit_expires_and_can_no_longer_ack() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        system(
            &machine,
            &engine,
            1,
            SystemCommand::SetClusterSettings {
                toml: "consumer_max_held_entries = 3\n".into(),
            },
        );
        create(&machine, &engine, 2, "slow");
        for index in 3..=6 {
            write_batch(&machine, &engine, index);
        }
        // At index 7, holding 3 entries keeps 5 on: "slow" needs 3 on, so it expires.
        let Response::Retained {
            consumers_expired, ..
        } = retain_journal(&machine, &engine, 7, 7)
        else {
            panic!("retention runs");
        };
        assert_eq!(consumers_expired, 1);
        assert_eq!(machine.consumers_expired(), 1);
        assert_eq!(
            journal::earliest(&engine).unwrap(),
            Some(Position::new(5, 0))
        );
        let slow = consumer::get(&engine, "slow").unwrap().unwrap();
        assert!(slow.expired);
        let Response::Refused { reason } = ack(&machine, &engine, 8, "slow", Position::new(6, 0))
        else {
            panic!("an expired consumer cannot ack");
        };
        assert!(reason.contains("expired"), "{reason}");
        // It no longer holds retention back.
        retain_journal(&machine, &engine, 9, 7);
        assert_eq!(journal::earliest(&engine).unwrap(), None);
    }
}

#[test]
fn a_machine_that_remembers_its_instruments_writes_what_a_fresh_one_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (warm_dir, cold_dir) = (tmp.path().join("warm"), tmp.path().join("cold"));
    let (warm_engine, cold_engine) = (open_engine(&warm_dir), open_engine(&cold_dir));
    let warm = ExchangeMachine::open(&warm_engine).unwrap();
    let records = samples::records();
    assert!(records
        .iter()
        .any(|r| matches!(r, crate::record::Record::Tick(_))));
    for index in 1..=6u64 {
        let cmd = WriteCommand::new("gw-1", index, Ack::Quorum, records.clone());
        write(&warm, &warm_engine, index, &cmd);
        // A machine opened afresh knows no instrument: it looks every one up.
        let cold = ExchangeMachine::open(&cold_engine).unwrap();
        write(&cold, &cold_engine, index, &cmd);
    }
    assert!(
        warm.instruments.contains(&crate::keys::instrument(
            crate::keys::Stream::Ticks,
            records
                .iter()
                .find_map(|r| match r {
                    crate::record::Record::Tick(t) => Some(t.instrument_id.as_str()),
                    _ => None,
                })
                .unwrap()
        )),
        "the warm machine remembered the ticks' instrument"
    );
    let hash = |e: &Engine| {
        e.scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
            .state_hash_skipping(&[])
            .unwrap()
    };
    assert_eq!(hash(&warm_engine), hash(&cold_engine));
}

fn write_group(
    machine: &ExchangeMachine,
    engine: &Engine,
    index: u64,
    writes: &[crate::EncodedWrite],
) -> Vec<Response> {
    let cmd = Command::WriteGroup(writes.to_vec());
    match machine
        .apply(engine, index, EntryContent::Command(&cmd), marker(index))
        .unwrap()
    {
        Response::Group(answers) => answers,
        other => panic!("a group is answered write by write, not {other:?}"),
    }
}

fn encoded(client: &str, request: u64, records: Vec<Record>) -> crate::EncodedWrite {
    crate::EncodedWrite::new(client, request, Ack::Quorum, records)
        .unwrap()
        .stamped(1_733_100_000_000_000_000)
}

/// The journal's events in order: (index, ordinal, record, outcome).
fn journal(engine: &Engine) -> Vec<(u64, u32, Record, crate::apply::Outcome)> {
    let read = crate::feed::journal::read_after(
        engine,
        crate::feed::Position::new(0, 0),
        &crate::feed::EventFilter::default(),
        usize::MAX,
    )
    .unwrap();
    read.batches
        .into_iter()
        .flat_map(|b| {
            b.events
                .into_iter()
                .map(move |e| (b.index, e.ordinal, e.record, e.outcome))
        })
        .collect()
}

#[derive(Debug, Default)]
struct Announced(parking_lot::Mutex<Vec<(u64, Option<Arc<CommittedBatch>>)>>);

impl EventSink for Announced {
    fn applied(&self, index: u64, batch: Option<Arc<CommittedBatch>>) {
        self.0.lock().push((index, batch));
    }
    fn reset(&self) {}
}

#[test]
fn a_group_of_writes_stores_and_answers_what_the_same_writes_would_one_entry_each() {
    let records = samples::records();
    let (orders, rest) = records.split_at(2);
    // The insert and its update in separate writes: the update must see the insert.
    let writes = vec![
        encoded("gw-1", 1, orders[..1].to_vec()),
        encoded("gw-2", 1, orders[1..].to_vec()),
        encoded("gw-3", 7, rest.to_vec()),
    ];

    let alone_dir = tempfile::tempdir().unwrap();
    let alone = open_engine(alone_dir.path());
    let machine = ExchangeMachine::open(&alone).unwrap();
    let mut expected = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let Response::Written { outcomes } = write_encoded(&machine, &alone, 1 + i as u64, w)
        else {
            panic!("write {i} is applied");
        };
        expected.push(outcomes);
    }

    let group_dir = tempfile::tempdir().unwrap();
    let grouped = open_engine(group_dir.path());
    let machine = ExchangeMachine::open(&grouped).unwrap();
    let sink = Arc::new(Announced::default());
    machine.set_event_sink(sink.clone());
    let answers = write_group(&machine, &grouped, 1, &writes);
    let got: Vec<Vec<crate::apply::Outcome>> = answers
        .iter()
        .map(|a| match a {
            Response::Written { outcomes } => outcomes.clone(),
            other => panic!("every write of the group is applied, not {other:?}"),
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        got[1],
        vec![crate::apply::Outcome::OrderUpdated],
        "the update saw the insert staged by the write before it"
    );

    // The same events, numbered on through the one entry.
    let journal_alone: Vec<_> = journal(&alone)
        .into_iter()
        .map(|(_, _, r, o)| (r, o))
        .collect();
    let journal_grouped = journal(&grouped);
    assert_eq!(
        journal_grouped
            .iter()
            .map(|(i, o, _, _)| (*i, *o))
            .collect::<Vec<_>>(),
        (0..records.len() as u32)
            .map(|o| (1, o))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        journal_grouped
            .into_iter()
            .map(|(_, _, r, o)| (r, o))
            .collect::<Vec<_>>(),
        journal_alone
    );
    // Subscribers are told the same events, once, at the group's index.
    let announced = sink.0.lock();
    assert_eq!(announced.len(), 1);
    let (index, Some(batch)) = &announced[0] else {
        panic!("the group's events are announced");
    };
    assert_eq!(*index, 1);
    assert_eq!(batch.commit_ns, 1_733_100_000_000_000_000);
    assert_eq!(
        batch.events.iter().map(|e| e.ordinal).collect::<Vec<_>>(),
        (0..records.len() as u32).collect::<Vec<_>>()
    );
    assert_eq!(applied_marker(&grouped), Some(Bytes::from("1")));
}

#[test]
fn each_write_of_a_group_keeps_its_own_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let records = samples::records();
    let first = encoded("gw-1", 1, records[..1].to_vec());
    assert!(matches!(
        write_encoded(&machine, &engine, 1, &first),
        Response::Written { .. }
    ));

    let a = encoded("gw-2", 5, records[2..3].to_vec());
    let b = encoded("gw-3", 5, records[3..4].to_vec());
    let reused = encoded("gw-2", 5, records[4..5].to_vec());
    let answers = write_group(
        &machine,
        &engine,
        2,
        &[
            first.clone(),
            a.clone(),
            b.clone(),
            a.clone(),
            reused.clone(),
        ],
    );
    let Response::Written {
        outcomes: a_outcomes,
    } = answers[1].clone()
    else {
        panic!("a is applied: {answers:?}");
    };
    assert!(matches!(
        &answers[0],
        Response::Duplicate {
            original_index: 1,
            ..
        }
    ));
    assert!(matches!(answers[2], Response::Written { .. }));
    assert_eq!(
        answers[3],
        Response::Duplicate {
            original_index: 2,
            outcomes: a_outcomes.clone()
        },
        "a retry that overtook nothing in the same group is answered as a retry"
    );
    assert_eq!(answers[4], Response::RequestIdReused { original_index: 2 });
    // Only a and b were written: two records in the journal at index 2.
    let at_two: Vec<_> = journal(&engine)
        .into_iter()
        .filter(|(i, ..)| *i == 2)
        .map(|(_, o, r, _)| (o, r))
        .collect();
    assert_eq!(
        at_two,
        vec![(0, records[2].clone()), (1, records[3].clone())]
    );

    // Later, each is a retry of the group's entry.
    assert_eq!(
        write_encoded(&machine, &engine, 3, &a),
        Response::Duplicate {
            original_index: 2,
            outcomes: a_outcomes
        }
    );
    assert_eq!(
        write_encoded(&machine, &engine, 4, &reused),
        Response::RequestIdReused { original_index: 2 }
    );
}

#[test]
fn a_write_of_a_group_that_does_not_decode_is_refused_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open_engine(tmp.path());
    let machine = ExchangeMachine::open(&engine).unwrap();
    let records = samples::records();
    let mut bad = encoded("gw-1", 1, records[..1].to_vec());
    bad.records = b"not an archive".to_vec();
    let good = encoded("gw-2", 1, records[2..3].to_vec());
    let answers = write_group(&machine, &engine, 1, &[bad, good]);
    assert!(
        matches!(&answers[0], Response::Refused { reason } if reason.contains("do not decode")),
        "{answers:?}"
    );
    assert!(matches!(answers[1], Response::Written { .. }));
    assert_eq!(journal(&engine).len(), 1);
}

#[test]
fn a_group_entry_survives_the_log_format_round_trip() {
    let records = samples::records();
    let cmd = Command::WriteGroup(vec![
        encoded("gw-1", 1, records[..2].to_vec()),
        encoded("gw-2", 9, records[2..].to_vec()),
    ]);
    let bytes = cmd.to_bytes();
    assert!(Command::is_client_write(&bytes));
    assert_eq!(Command::from_entry(&bytes).unwrap(), cmd);
}

mod access_and_audit {
    use super::*;
    use crate::audit::{self, AuditEntry, AuditFilter};

    fn set(client: &str, roles: &[&str]) -> SystemCommand {
        SystemCommand::SetAccess(Box::new(crate::AccessChange {
            client: client.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            users: Vec::new(),
            instruments: vec!["SHFE.rb*".into()],
            set_by: "client ops of cluster c1".into(),
            set_at_ns: 7,
        }))
    }

    fn entry(action: &str, result: &str) -> AuditEntry {
        AuditEntry {
            at_ns: 100,
            who: "client ops of cluster c1".into(),
            from: "127.0.0.1:5000".into(),
            node_id: 1,
            action: action.into(),
            detail: "x".repeat(3000),
            result: result.into(),
        }
    }

    #[test]
    fn an_access_entry_is_set_replaced_removed_and_survives_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        assert!(machine.access().is_empty());

        let r = system(
            &machine,
            &engine,
            1,
            set("alice", &["writer", "reader", "writer"]),
        );
        assert_eq!(
            r,
            Response::AccessChanged {
                existed: true,
                index: 1
            }
        );
        assert_eq!(machine.access()["alice"].roles, vec!["reader", "writer"]);
        system(&machine, &engine, 2, set("alice", &[]));
        system(&machine, &engine, 3, set("bob", &["admin"]));
        let alice = machine.access()["alice"].clone();
        assert!(alice.roles.is_empty());
        assert_eq!((alice.index, alice.set_at_ns), (2, 7));

        let reopened = ExchangeMachine::open(&engine).unwrap();
        assert_eq!(reopened.access(), machine.access());

        let gone = SystemCommand::RemoveAccess {
            client: "alice".into(),
        };
        let r = system(&machine, &engine, 4, gone.clone());
        assert_eq!(
            r,
            Response::AccessChanged {
                existed: true,
                index: 4
            }
        );
        let r = system(&machine, &engine, 5, gone);
        assert_eq!(
            r,
            Response::AccessChanged {
                existed: false,
                index: 5
            }
        );
        assert_eq!(machine.access().keys().collect::<Vec<_>>(), vec!["bob"]);
        assert_eq!(
            ExchangeMachine::open(&engine).unwrap().access(),
            machine.access()
        );
    }

    #[test]
    fn an_oversized_access_entry_is_refused_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        let long = "a".repeat(65);
        let bad = [
            set("", &["reader"]),
            set(&long, &["reader"]),
            set("carol", &[""]),
        ];
        for (index, bad) in (1..).zip(bad) {
            let r = system(&machine, &engine, index, bad);
            assert!(matches!(r, Response::Refused { .. }), "{r:?}");
        }
        assert!(machine.access().is_empty());
        assert!(crate::access::load(&engine).unwrap().is_empty());
    }

    #[test]
    fn audit_entries_list_in_log_order_with_filters() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        let actions = [
            ("Admin/TriggerSnapshot", "ok"),
            (
                "Admin/TransferLeadership",
                "FAILED_PRECONDITION: no such node",
            ),
            ("Admin/Halt", "ok"),
        ];
        for (i, (action, result)) in actions.iter().enumerate() {
            let index = 10 + i as u64 * 300;
            let r = system(
                &machine,
                &engine,
                index,
                SystemCommand::Audit(Box::new(entry(action, result))),
            );
            assert_eq!(r, Response::Audited { index });
        }
        let all = audit::list(&engine, &AuditFilter::default(), 100).unwrap();
        let indexes: Vec<u64> = all.iter().map(|a| a.index).collect();
        assert_eq!(indexes, vec![10, 310, 610]);
        assert_eq!(all[0].entry.detail.len(), audit::MAX_FIELD_BYTES);
        let last_two = audit::list(&engine, &AuditFilter::default(), 2).unwrap();
        assert_eq!(last_two[0].index, 310);
        let failed = AuditFilter {
            failed_only: true,
            ..AuditFilter::default()
        };
        let f = audit::list(&engine, &failed, 100).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].entry.action, "Admin/TransferLeadership");
        let halts = AuditFilter {
            action: Some("Halt".into()),
            ..AuditFilter::default()
        };
        assert_eq!(audit::list(&engine, &halts, 100).unwrap()[0].index, 610);
    }

    #[test]
    fn audit_retention_drops_the_entries_older_than_its_days_as_new_ones_come() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = open_engine(tmp.path());
        let machine = ExchangeMachine::open(&engine).unwrap();
        let day_ns = 86_400 * 1_000_000_000_i64;
        let at = |days: i64, index: u64| {
            let mut e = entry("Admin/TriggerSnapshot", "ok");
            e.at_ns = days * day_ns;
            system(&machine, &engine, index, SystemCommand::Audit(Box::new(e)))
        };
        // Kept for ever by default.
        at(1, 10);
        at(2, 11);
        at(40, 12);
        assert_eq!(
            audit::list(&engine, &AuditFilter::default(), 100)
                .unwrap()
                .len(),
            3
        );

        let changed = system(
            &machine,
            &engine,
            13,
            SystemCommand::SetClusterSettings {
                toml: "audit_retention_days = 30\n".into(),
            },
        );
        assert_eq!(changed, Response::SettingsChanged);
        // Day 41 keeps what is newer than day 11: the entry of day 40, and itself.
        at(41, 14);
        let kept: Vec<u64> = audit::list(&engine, &AuditFilter::default(), 100)
            .unwrap()
            .iter()
            .map(|a| a.index)
            .collect();
        assert_eq!(kept, vec![12, 14]);
    }
}
