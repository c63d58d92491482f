//! Every stateless validation rule, on every record kind: the error names the record's index
//! and the field, and one bad record refuses the whole batch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qastore_exchange::record::UnknownEnum;
use qastore_exchange::record::{
    samples, validate_batch, Direction, Level, OrderStatus, PriceType, Record, RecordError,
};

fn sample(kind: usize) -> Record {
    samples::records()[kind].clone()
}

/// Puts `bad` third in an otherwise valid batch and returns the error.
fn refuse(bad: Record) -> RecordError {
    let mut batch = samples::records();
    batch.insert(2, bad);
    validate_batch(&batch).expect_err("the batch must be refused")
}

fn expect(bad: Record, field: &str) {
    let err = refuse(bad);
    assert_eq!(err.index, 2, "{err}");
    assert_eq!(err.field, field, "{err}");
    assert!(err.to_string().contains(field));
}

macro_rules! case {
    ($kind:expr, $variant:ident, |$r:ident| $change:expr, $field:literal) => {{
        let Record::$variant(mut $r) = sample($kind) else {
            unreachable!()
        };
        $change;
        expect(Record::$variant($r), $field);
    }};
}

#[test]
fn ids_must_be_present_short_and_printable() {
    case!(0, OrderInsert, |o| o.user_id.clear(), "user_id");
    case!(0, OrderInsert, |o| o.order_id = "x".repeat(65), "order_id");
    case!(
        0,
        OrderInsert,
        |o| o.instrument_id = "IF\u{0}2412".into(),
        "instrument_id"
    );
    case!(1, OrderUpdate, |u| u.order_id.clear(), "order_id");
    case!(
        2,
        TradeExecuted,
        |t| t.exchange_trade_id.clear(),
        "exchange_trade_id"
    );
    case!(3, AccountUpdate, |a| a.currency.clear(), "currency");
    case!(4, PositionUpdate, |p| p.exchange_id.clear(), "exchange_id");
    case!(5, Tick, |t| t.instrument_id.clear(), "instrument_id");
    case!(
        6,
        OrderBookSnapshot,
        |b| b.instrument_id = "\n".into(),
        "instrument_id"
    );
    case!(
        1,
        OrderUpdate,
        |u| u.last_msg = "m".repeat(2000),
        "last_msg"
    );
}

#[test]
fn enums_must_be_specified_and_known() {
    case!(
        0,
        OrderInsert,
        |o| o.direction = Direction::Unspecified,
        "direction"
    );
    case!(
        0,
        OrderInsert,
        |o| o.price_type = PriceType::Unspecified,
        "price_type"
    );
    case!(
        1,
        OrderUpdate,
        |u| u.status = OrderStatus::Unspecified,
        "status"
    );
    case!(
        2,
        TradeExecuted,
        |t| t.offset = Default::default(),
        "offset"
    );
    assert_eq!(
        Direction::from_code(7, "direction"),
        Err(UnknownEnum {
            field: "direction",
            value: 7
        })
    );
}

#[test]
fn prices_must_be_finite_and_not_negative() {
    case!(0, OrderInsert, |o| o.limit_price = f64::NAN, "limit_price");
    case!(0, OrderInsert, |o| o.limit_price = 0.0, "limit_price");
    case!(0, OrderInsert, |o| o.frozen_margin = -1.0, "frozen_margin");
    case!(2, TradeExecuted, |t| t.price = f64::INFINITY, "price");
    case!(2, TradeExecuted, |t| t.commission = -0.5, "commission");
    case!(3, AccountUpdate, |a| a.balance = f64::NAN, "balance");
    case!(3, AccountUpdate, |a| a.margin = -3.0, "margin");
    case!(
        4,
        PositionUpdate,
        |p| p.open_price_long = f64::NEG_INFINITY,
        "open_price_long"
    );
    case!(5, Tick, |t| t.last_price = 0.0, "last_price");
    case!(5, Tick, |t| t.ask_price[3] = f64::NAN, "ask_price");
    case!(6, OrderBookSnapshot, |b| b.asks[0].price = -1.0, "asks");
}

#[test]
fn volumes_must_add_up() {
    case!(
        0,
        OrderInsert,
        |o| o.volume_left = o.volume_orign + 1,
        "volume_left"
    );
    case!(0, OrderInsert, |o| o.volume_orign = 0, "volume_orign");
    case!(0, OrderInsert, |o| o.volume_left = -1, "volume_left");
    case!(1, OrderUpdate, |u| u.volume_left = -4, "volume_left");
    case!(2, TradeExecuted, |t| t.volume = 0, "volume");
    case!(
        4,
        PositionUpdate,
        |p| p.volume_short_his = -1,
        "volume_short_his"
    );
    case!(5, Tick, |t| t.volume = -10, "volume");
    case!(5, Tick, |t| t.bid_volume[0] = -1, "bid_volume");
    case!(6, OrderBookSnapshot, |b| b.bids[1].volume = 0, "bids");
}

#[test]
fn times_and_trading_days_must_be_present() {
    case!(
        0,
        OrderInsert,
        |o| o.insert_date_time = 0,
        "insert_date_time"
    );
    case!(1, OrderUpdate, |u| u.time = 0, "time");
    case!(2, TradeExecuted, |t| t.trading_day = 0, "trading_day");
    case!(
        2,
        TradeExecuted,
        |t| t.trading_day = 20241331,
        "trading_day"
    );
    case!(5, Tick, |t| t.datetime = -5, "datetime");
    case!(5, Tick, |t| t.trading_day = 20250229, "trading_day");
    case!(6, OrderBookSnapshot, |b| b.datetime = 0, "datetime");
}

#[test]
fn books_are_ordered_best_first_and_bounded() {
    case!(6, OrderBookSnapshot, |b| b.bids.reverse(), "bids");
    case!(
        6,
        OrderBookSnapshot,
        |b| b.asks = (1..=101)
            .map(|i| Level {
                price: 100.0 + f64::from(i),
                volume: 1
            })
            .collect(),
        "asks"
    );
}

#[test]
fn the_samples_are_valid() {
    validate_batch(&samples::records()).unwrap();
    // Leap day and an order with nothing left that is finished are fine.
    let Record::Tick(mut t) = sample(5) else {
        unreachable!()
    };
    t.trading_day = 20240229;
    let Record::OrderInsert(mut o) = sample(0) else {
        unreachable!()
    };
    o.status = OrderStatus::Finished;
    o.volume_left = 0;
    validate_batch(&[Record::Tick(t), Record::OrderInsert(o)]).unwrap();
}
