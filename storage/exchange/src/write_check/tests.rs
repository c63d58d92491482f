use super::*;
use crate::record::samples;

fn good() -> Vec<Record> {
    samples::records()
}

#[test]
fn a_good_write_is_the_same_command_new_makes() {
    let w = WriteCommand::validated("gw-1", 3, Ack::All, good()).unwrap();
    assert_eq!(w, WriteCommand::new("gw-1", 3, Ack::All, good()));
}

#[test]
fn client_ids_are_checked() {
    for bad in [String::new(), "x".repeat(65), "a\nb".into()] {
        let e = WriteCommand::validated(bad, 1, Ack::Quorum, good()).unwrap_err();
        assert_eq!(e, InvalidWrite::ClientId);
        assert!(e.to_string().contains("client_id"), "{e}");
    }
    assert!(WriteCommand::validated("x".repeat(64), 1, Ack::Quorum, good()).is_ok());
}

#[test]
fn an_empty_or_oversized_batch_is_refused_naming_records() {
    let e = WriteCommand::validated("gw", 1, Ack::Quorum, Vec::new()).unwrap_err();
    assert_eq!(e.to_string(), "field records: the batch is empty");
    let one = good().remove(0);
    let many = vec![one; MAX_BATCH_RECORDS + 1];
    let e = WriteCommand::validated("gw", 1, Ack::Quorum, many).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "field records: {} records exceed the limit of {MAX_BATCH_RECORDS} per batch",
            MAX_BATCH_RECORDS + 1
        )
    );
}

#[test]
fn a_bad_record_refuses_the_batch_naming_its_field() {
    let mut bad = good();
    let tick = bad.iter_mut().find_map(|r| match r {
        Record::Tick(t) => Some(t),
        _ => None,
    });
    tick.expect("the samples hold a tick").last_price = f64::NAN;
    let e = WriteCommand::validated("gw", 1, Ack::Quorum, bad).unwrap_err();
    assert!(matches!(e, InvalidWrite::Record(_)), "{e:?}");
    assert!(e.to_string().contains("last_price"), "{e}");
}
