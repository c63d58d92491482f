//! One realistic record of every kind, and the sample-file format that keeps archived samples
//! in the repository: if the archived format ever changes, reading the stored samples fails and
//! the change is noticed before it reaches data on disk.
//!
//! ```text
//! magic "QARECSMP" | format version u32 | count u32 | (length u32, zero padding to 16, bytes)*
//! ```

use super::{
    decode, encode, AccountUpdate, DecodeError, Direction, Level, Offset, OrderBookSnapshot,
    OrderInsert, OrderStatus, OrderUpdate, PositionUpdate, PriceType, Record, Tick, TimeCondition,
    TradeExecuted, VolumeCondition,
};
use qastore_lsm::codec::u32_at;

const MAGIC: &[u8; 8] = b"QARECSMP";
/// The record format version sample files are written with.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// 2024-12-02 09:30:00 +08:00, in epoch nanoseconds.
pub const SAMPLE_TIME: i64 = 1_733_103_000_000_000_000;

/// The first sample record `pick` accepts: tests ask for "a tick" or "an order update" with
/// `first(|r| matches!(r, Record::Tick(_)))`.
pub fn first(pick: impl Fn(&Record) -> bool) -> Option<Record> {
    records().into_iter().find(|r| pick(r))
}

/// One record of each kind, with realistic values.
pub fn records() -> Vec<Record> {
    vec![
        Record::OrderInsert(OrderInsert {
            user_id: "u1001".into(),
            order_id: "o-20241202-0001".into(),
            exchange_id: "CFFEX".into(),
            instrument_id: "IF2412".into(),
            direction: Direction::Buy,
            offset: Offset::Open,
            price_type: PriceType::Limit,
            limit_price: 3921.4,
            volume_orign: 2,
            volume_left: 2,
            time_condition: TimeCondition::Gfd,
            volume_condition: VolumeCondition::Any,
            status: OrderStatus::Alive,
            insert_date_time: SAMPLE_TIME,
            exchange_order_id: String::new(),
            frozen_margin: 282_341.0,
        }),
        Record::OrderUpdate(OrderUpdate {
            user_id: "u1001".into(),
            order_id: "o-20241202-0001".into(),
            status: OrderStatus::Finished,
            volume_left: 0,
            last_msg: "全部成交".into(),
            time: SAMPLE_TIME + 1_500_000,
        }),
        Record::TradeExecuted(TradeExecuted {
            user_id: "u1001".into(),
            trade_id: "t-0001".into(),
            order_id: "o-20241202-0001".into(),
            exchange_id: "CFFEX".into(),
            instrument_id: "IF2412".into(),
            exchange_trade_id: "X778812".into(),
            direction: Direction::Buy,
            offset: Offset::Open,
            price: 3921.2,
            volume: 2,
            commission: 54.9,
            trade_date_time: SAMPLE_TIME + 1_200_000,
            trading_day: 20241202,
        }),
        Record::AccountUpdate(AccountUpdate {
            user_id: "u1001".into(),
            currency: "CNY".into(),
            pre_balance: 10_000_000.0,
            static_balance: 10_000_000.0,
            commission: 54.9,
            position_profit: -120.0,
            float_profit: -120.0,
            balance: 9_999_825.1,
            margin: 282_326.4,
            available: 9_717_498.7,
            risk_ratio: 0.0282,
            ..AccountUpdate::default()
        }),
        Record::PositionUpdate(PositionUpdate {
            user_id: "u1001".into(),
            exchange_id: "CFFEX".into(),
            instrument_id: "IF2412".into(),
            volume_long_today: 2,
            open_price_long: 3921.2,
            position_price_long: 3921.2,
            open_cost_long: 2_352_720.0,
            position_cost_long: 2_352_720.0,
            float_profit_long: -120.0,
            position_profit_long: -120.0,
            margin_long: 282_326.4,
            ..PositionUpdate::default()
        }),
        Record::Tick(Tick {
            instrument_id: "IF2412".into(),
            datetime: SAMPLE_TIME + 500_000_000,
            sequence: 17,
            trading_day: 20241202,
            last_price: 3921.0,
            open: 3915.0,
            highest: 3925.6,
            lowest: 3912.2,
            volume: 1_834,
            amount: 2_156_804_040.0,
            open_interest: 225_010,
            bid_price: [3920.8, 3920.6, 3920.4, 3920.2, 3920.0],
            bid_volume: [3, 5, 2, 8, 11],
            ask_price: [3921.2, 3921.4, 3921.6, 3921.8, 3922.0],
            ask_volume: [1, 4, 6, 2, 9],
            upper_limit: 4307.4,
            lower_limit: 3524.2,
        }),
        Record::OrderBookSnapshot(OrderBookSnapshot {
            instrument_id: "IF2412".into(),
            datetime: SAMPLE_TIME + 500_000_000,
            bids: vec![
                Level {
                    price: 3920.8,
                    volume: 3,
                },
                Level {
                    price: 3920.6,
                    volume: 5,
                },
            ],
            asks: vec![Level {
                price: 3921.2,
                volume: 1,
            }],
        }),
    ]
}

/// Writes `records` in the sample-file format.
pub fn write_file(records: &[Record]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&RECORD_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        let bytes = encode(r);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.resize(out.len().next_multiple_of(16), 0);
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reads a sample file.
pub fn read_file(buf: &[u8]) -> Result<Vec<Record>, DecodeError> {
    let bad = |what: &str| DecodeError(what.to_string());
    if buf.get(..8) != Some(&MAGIC[..]) {
        return Err(bad("not a sample file"));
    }
    if u32_at(buf, 8) != Some(RECORD_FORMAT_VERSION) {
        return Err(bad("sample file has another record format version"));
    }
    let count = u32_at(buf, 12).ok_or_else(|| bad("short header"))? as usize;
    let mut pos = 16;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = u32_at(buf, pos).ok_or_else(|| bad("short record header"))? as usize;
        pos = (pos + 4).next_multiple_of(16);
        let bytes = buf
            .get(pos..pos + len)
            .ok_or_else(|| bad("record past the end"))?;
        out.push(decode::<Record>(bytes)?);
        pos += len;
    }
    Ok(out)
}
