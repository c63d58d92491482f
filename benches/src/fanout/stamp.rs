//! What every written record carries: its sequence number in the writer and the time it was
//! sent. QAStore stores it as a tick; etcd and NATS store the tick's protobuf encoding, so every
//! system carries and decodes the same bytes.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use qastore_proto::v1 as pb;

/// A record's identity in the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The writer's sequence number, from 0, unique within a run.
    pub seq: u64,
    /// When the writer sent the record's batch, in epoch nanoseconds.
    pub sent_ns: i64,
}

/// Epoch nanoseconds now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The instruments the ticks rotate over.
const INSTRUMENTS: [&str; 8] = [
    "IF2412", "IC2412", "IH2412", "rb2501", "cu2501", "au2502", "sc2501", "m2505",
];

/// A full tick (five book levels) whose `sequence` is the stamp's and whose `datetime` is its
/// send time.
pub fn tick(s: Stamp) -> pb::Record {
    let price = 3500.0 + (s.seq % 100) as f64 * 0.2;
    pb::Record {
        kind: Some(pb::record::Kind::Tick(pb::Tick {
            instrument_id: INSTRUMENTS[(s.seq % INSTRUMENTS.len() as u64) as usize].into(),
            datetime: s.sent_ns,
            sequence: s.seq,
            trading_day: 20241202,
            last_price: price,
            open: 3500.0,
            highest: 3520.0,
            lowest: 3480.0,
            volume: s.seq as i64,
            amount: price * s.seq as f64,
            open_interest: 100_000,
            bid_price: (1..=5).map(|i| price - 0.2 * i as f64).collect(),
            bid_volume: vec![10, 20, 30, 40, 50],
            ask_price: (1..=5).map(|i| price + 0.2 * i as f64).collect(),
            ask_volume: vec![15, 25, 35, 45, 55],
            upper_limit: 3850.0,
            lower_limit: 3150.0,
        })),
    }
}

/// The stamp a record carries, if it is one of the benchmark's ticks.
pub fn of_record(r: &pb::Record) -> Option<Stamp> {
    match &r.kind {
        Some(pb::record::Kind::Tick(t)) => Some(Stamp {
            seq: t.sequence,
            sent_ns: t.datetime,
        }),
        _ => None,
    }
}

/// The tick of `s`, encoded (the value etcd and NATS store).
pub fn encode(s: Stamp) -> Vec<u8> {
    tick(s).encode_to_vec()
}

/// The stamp in an encoded tick.
pub fn decode(bytes: &[u8]) -> Option<Stamp> {
    pb::Record::decode(bytes).ok().as_ref().and_then(of_record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_the_tick_encoding() {
        let s = Stamp {
            seq: 12_345,
            sent_ns: now_ns(),
        };
        assert_eq!(decode(&encode(s)), Some(s));
        assert_eq!(decode(b"not a record"), None);
    }
}
