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
