//! The feed's messages: positions, filters and events between the API's form and the
//! exchange's.

use bytes::Bytes;
use prost::Message;
use qastore_exchange::feed::conflate::Conflated;
use qastore_exchange::feed::{CommittedBatch, CommittedEvent, EventFilter, EventKind, Position};
use qastore_proto::v1 as pb;

use crate::convert::records::{outcome_to_pb, record_to_pb};
use crate::error::ApiError;

/// A position in the API's form.
pub fn position_to_pb(p: Position) -> pb::Position {
    pb::Position {
        log_index: p.index,
        ordinal: p.ordinal,
    }
}

/// A position from the API's form.
pub fn position_from_pb(p: &pb::Position) -> Position {
    Position::new(p.log_index, p.ordinal)
}

/// One event in the API's form.
pub fn event_to_pb(batch: &CommittedBatch, e: &CommittedEvent) -> pb::Event {
    pb::Event {
        position: Some(position_to_pb(batch.position_of(e))),
        record: Some(record_to_pb(&e.record)),
        result: Some(outcome_to_pb(&e.outcome)),
        commit_time_ns: batch.commit_ns,
        merged: 1,
    }
}

/// One event encoded in the API's form, as frames carry it (see `qastore_proto::frames`).
pub fn event_encoded(batch: &CommittedBatch, e: &CommittedEvent) -> Bytes {
    Bytes::from(event_to_pb(batch, e).encode_to_vec())
}

/// Every event of a batch encoded in the API's form, in ordinal order: one buffer, one slice
/// per event, so every stream the batch goes to shares the same bytes.
pub fn batch_encoded(batch: &CommittedBatch) -> Vec<Bytes> {
    let events: Vec<pb::Event> = batch.events.iter().map(|e| event_to_pb(batch, e)).collect();
    let total = events.iter().map(Message::encoded_len).sum();
    // A `Vec` takes prost's many small writes faster than a `BytesMut`.
    let mut buf = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(events.len());
    for e in &events {
        // The buffer was sized for every event: encoding cannot run out of room.
        let _ = e.encode(&mut buf);
        ends.push(buf.len());
    }
    let all = Bytes::from(buf);
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let one = all.slice(start..end);
            start = end;
            one
        })
        .collect()
}

/// A conflated event encoded in the API's form.
pub fn conflated_encoded(c: &Conflated) -> Bytes {
    let event = pb::Event {
        position: Some(position_to_pb(c.position)),
        record: Some(record_to_pb(&c.record)),
        result: Some(outcome_to_pb(&c.outcome)),
        commit_time_ns: c.commit_ns,
        merged: c.merged,
    };
    Bytes::from(event.encode_to_vec())
}

/// A checked filter from the API's form (absent: every event).
pub fn filter_from_pb(f: Option<pb::EventFilter>) -> Result<EventFilter, ApiError> {
    let Some(f) = f else {
        return Ok(EventFilter::everything());
    };
    let mut kinds = Vec::with_capacity(f.kinds.len());
    for k in f.kinds {
        let kind = match pb::RecordKind::try_from(k) {
            Ok(pb::RecordKind::Orders) => EventKind::Orders,
            Ok(pb::RecordKind::Trades) => EventKind::Trades,
            Ok(pb::RecordKind::Accounts) => EventKind::Accounts,
            Ok(pb::RecordKind::Positions) => EventKind::Positions,
            Ok(pb::RecordKind::Ticks) => EventKind::Ticks,
            Ok(pb::RecordKind::Books) => EventKind::Books,
            Ok(pb::RecordKind::Unspecified) | Err(_) => {
                return Err(ApiError::InvalidArgument(format!(
                    "field filter.kinds: unknown record kind {k}"
                )))
            }
        };
        kinds.push(kind);
    }
    let exchange = (!f.exchange.is_empty()).then_some(f.exchange);
    EventFilter::new(
        kinds,
        f.instruments,
        f.instrument_prefixes,
        f.users,
        exchange,
    )
    .map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_exchange::apply::Outcome;
    use qastore_exchange::record::samples;

    #[test]
    fn a_batch_encoded_once_reads_back_as_its_events() {
        let batch = CommittedBatch {
            index: 41,
            commit_ns: 1_733_100_000_000_000_000,
            events: samples::records()
                .into_iter()
                .enumerate()
                .map(|(i, record)| CommittedEvent {
                    ordinal: i as u32,
                    record,
                    outcome: Outcome::OrderUpdated,
                })
                .collect(),
        };
        let encoded = batch_encoded(&batch);
        assert_eq!(encoded.len(), batch.events.len());
        for (bytes, e) in encoded.iter().zip(&batch.events) {
            assert_eq!(
                pb::Event::decode(bytes.clone()).unwrap(),
                event_to_pb(&batch, e)
            );
            assert_eq!(*bytes, event_encoded(&batch, e));
        }
    }

    #[test]
    fn unknown_kinds_and_empty_entries_are_refused_naming_the_field() {
        let f = pb::EventFilter {
            kinds: vec![42],
            ..Default::default()
        };
        let e = filter_from_pb(Some(f)).unwrap_err().to_string();
        assert!(e.contains("filter.kinds"), "{e}");
        let f = pb::EventFilter {
            kinds: vec![pb::RecordKind::Unspecified as i32],
            ..Default::default()
        };
        assert!(filter_from_pb(Some(f)).is_err());
        let f = pb::EventFilter {
            instrument_prefixes: vec![String::new()],
            ..Default::default()
        };
        let e = filter_from_pb(Some(f)).unwrap_err().to_string();
        assert!(e.contains("filter.instrument_prefixes"), "{e}");
        assert_eq!(filter_from_pb(None).unwrap(), EventFilter::everything());
    }
}
