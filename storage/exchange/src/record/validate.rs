//! Stateless validation: what the leader checks before proposing a batch. It never reads
//! stored state; outcomes that depend on it (an update to an unknown order) are decided when the
//! batch is applied.

use super::account::{AccountUpdate, PositionUpdate};
use super::enums::{OrderStatus, PriceType};
use super::market::{Level, OrderBookSnapshot, Tick};
use super::order::{OrderInsert, OrderUpdate};
use super::trade::TradeExecuted;
use super::Record;

/// The longest id (user, order, trade, instrument, exchange, currency) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// The longest free-text message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The most levels a book side may have.
pub const MAX_BOOK_LEVELS: usize = 100;

/// Why a record of a batch was refused. The whole batch is refused with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index} ({kind}): field {field}: {reason}")]
pub struct RecordError {
    /// Position of the record in its batch.
    pub index: usize,
    /// Its kind.
    pub kind: &'static str,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

type Check = Result<(), (&'static str, String)>;

fn fail(field: &'static str, reason: impl Into<String>) -> Check {
    Err((field, reason.into()))
}

fn id(field: &'static str, value: &str) -> Check {
    if value.is_empty() {
        return fail(field, "is empty");
    }
    if value.len() > MAX_ID_BYTES {
        return fail(
            field,
            format!("is {} bytes, over the limit of {MAX_ID_BYTES}", value.len()),
        );
    }
    if value.chars().any(char::is_control) {
        return fail(field, "contains a control character");
    }
    Ok(())
}

fn text(field: &'static str, value: &str) -> Check {
    if value.len() > MAX_MESSAGE_BYTES {
        return fail(
            field,
            format!(
                "is {} bytes, over the limit of {MAX_MESSAGE_BYTES}",
                value.len()
            ),
        );
    }
    Ok(())
}

fn optional_id(field: &'static str, value: &str) -> Check {
    if value.is_empty() {
        Ok(())
    } else {
        id(field, value)
    }
}

/// Any finite number (profits may be negative).
fn finite(field: &'static str, v: f64) -> Check {
    if v.is_finite() {
        Ok(())
    } else {
        fail(field, format!("{v} is not a finite number"))
    }
}

fn non_negative(field: &'static str, v: f64) -> Check {
    finite(field, v)?;
    if v < 0.0 {
        return fail(field, format!("{v} is negative"));
    }
    Ok(())
}

fn positive(field: &'static str, v: f64) -> Check {
    finite(field, v)?;
    if v <= 0.0 {
        return fail(field, format!("{v} is not above zero"));
    }
    Ok(())
}

fn volume(field: &'static str, v: i64) -> Check {
    if v < 0 {
        return fail(field, format!("{v} is negative"));
    }
    Ok(())
}

fn timestamp(field: &'static str, v: i64) -> Check {
    if v <= 0 {
        return fail(field, "is missing (zero or negative)");
    }
    Ok(())
}

fn specified<T: Default + PartialEq>(field: &'static str, v: &T) -> Check {
    if *v == T::default() {
        return fail(field, "is unspecified");
    }
    Ok(())
}

/// Whether `day` is a real `YYYYMMDD` date.
pub fn valid_trading_day(day: u32) -> bool {
    let (y, m, d) = (day / 10_000, (day / 100) % 100, day % 100);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1990..=2200).contains(&y) && (1..=days).contains(&d)
}

fn trading_day(field: &'static str, day: u32) -> Check {
    if day == 0 {
        return fail(field, "is missing");
    }
    if !valid_trading_day(day) {
        return fail(field, format!("{day} is not a YYYYMMDD date"));
    }
    Ok(())
}

fn order_insert(o: &OrderInsert) -> Check {
    id("user_id", &o.user_id)?;
    id("order_id", &o.order_id)?;
    id("exchange_id", &o.exchange_id)?;
    id("instrument_id", &o.instrument_id)?;
    specified("direction", &o.direction)?;
    specified("offset", &o.offset)?;
    specified("price_type", &o.price_type)?;
    specified("time_condition", &o.time_condition)?;
    specified("volume_condition", &o.volume_condition)?;
    specified("status", &o.status)?;
    if o.price_type == PriceType::Limit {
        positive("limit_price", o.limit_price)?;
    } else {
        non_negative("limit_price", o.limit_price)?;
    }
    if o.volume_orign <= 0 {
        return fail(
            "volume_orign",
            format!("{} is not above zero", o.volume_orign),
        );
    }
    volume("volume_left", o.volume_left)?;
    if o.volume_left > o.volume_orign {
        return fail(
            "volume_left",
            format!("{} exceeds volume_orign {}", o.volume_left, o.volume_orign),
        );
    }
    if o.status == OrderStatus::Alive && o.volume_left == 0 {
        return fail("volume_left", "is zero for an ALIVE order");
    }
    timestamp("insert_date_time", o.insert_date_time)?;
    optional_id("exchange_order_id", &o.exchange_order_id)?;
    non_negative("frozen_margin", o.frozen_margin)
}

fn order_update(u: &OrderUpdate) -> Check {
    id("user_id", &u.user_id)?;
    id("order_id", &u.order_id)?;
    specified("status", &u.status)?;
    volume("volume_left", u.volume_left)?;
    text("last_msg", &u.last_msg)?;
    timestamp("time", u.time)
}

fn trade(t: &TradeExecuted) -> Check {
    id("user_id", &t.user_id)?;
    id("trade_id", &t.trade_id)?;
    id("order_id", &t.order_id)?;
    id("exchange_id", &t.exchange_id)?;
    id("instrument_id", &t.instrument_id)?;
    id("exchange_trade_id", &t.exchange_trade_id)?;
    specified("direction", &t.direction)?;
    specified("offset", &t.offset)?;
    positive("price", t.price)?;
    if t.volume <= 0 {
        return fail("volume", format!("{} is not above zero", t.volume));
    }
    non_negative("commission", t.commission)?;
    timestamp("trade_date_time", t.trade_date_time)?;
    trading_day("trading_day", t.trading_day)
}

fn account(a: &AccountUpdate) -> Check {
    id("user_id", &a.user_id)?;
    id("currency", &a.currency)?;
    for (field, v) in [
        ("pre_balance", a.pre_balance),
        ("static_balance", a.static_balance),
        ("close_profit", a.close_profit),
        ("premium", a.premium),
        ("position_profit", a.position_profit),
        ("float_profit", a.float_profit),
        ("balance", a.balance),
        ("available", a.available),
    ] {
        finite(field, v)?;
    }
    for (field, v) in [
        ("deposit", a.deposit),
        ("withdraw", a.withdraw),
        ("commission", a.commission),
        ("margin", a.margin),
        ("frozen_margin", a.frozen_margin),
        ("frozen_commission", a.frozen_commission),
        ("frozen_premium", a.frozen_premium),
        ("risk_ratio", a.risk_ratio),
    ] {
        non_negative(field, v)?;
    }
    Ok(())
}

fn position(p: &PositionUpdate) -> Check {
    id("user_id", &p.user_id)?;
    id("exchange_id", &p.exchange_id)?;
    id("instrument_id", &p.instrument_id)?;
    for (field, v) in [
        ("volume_long_today", p.volume_long_today),
        ("volume_long_his", p.volume_long_his),
        ("volume_short_today", p.volume_short_today),
        ("volume_short_his", p.volume_short_his),
    ] {
        volume(field, v)?;
    }
    for (field, v) in [
        ("open_price_long", p.open_price_long),
        ("open_price_short", p.open_price_short),
        ("position_price_long", p.position_price_long),
        ("position_price_short", p.position_price_short),
        ("open_cost_long", p.open_cost_long),
        ("open_cost_short", p.open_cost_short),
        ("position_cost_long", p.position_cost_long),
        ("position_cost_short", p.position_cost_short),
        ("margin_long", p.margin_long),
        ("margin_short", p.margin_short),
    ] {
        non_negative(field, v)?;
    }
    for (field, v) in [
        ("float_profit_long", p.float_profit_long),
        ("float_profit_short", p.float_profit_short),
        ("position_profit_long", p.position_profit_long),
        ("position_profit_short", p.position_profit_short),
    ] {
        finite(field, v)?;
    }
    Ok(())
}

fn tick(t: &Tick) -> Check {
    id("instrument_id", &t.instrument_id)?;
    timestamp("datetime", t.datetime)?;
    trading_day("trading_day", t.trading_day)?;
    positive("last_price", t.last_price)?;
    for (field, v) in [
        ("open", t.open),
        ("highest", t.highest),
        ("lowest", t.lowest),
        ("amount", t.amount),
        ("upper_limit", t.upper_limit),
        ("lower_limit", t.lower_limit),
    ] {
        non_negative(field, v)?;
    }
    volume("volume", t.volume)?;
    volume("open_interest", t.open_interest)?;
    for i in 0..t.bid_price.len() {
        non_negative("bid_price", t.bid_price[i])?;
        non_negative("ask_price", t.ask_price[i])?;
        volume("bid_volume", t.bid_volume[i])?;
        volume("ask_volume", t.ask_volume[i])?;
    }
    Ok(())
}

fn levels(field: &'static str, side: &[Level], descending: bool) -> Check {
    if side.len() > MAX_BOOK_LEVELS {
        return fail(
            field,
            format!(
                "has {} levels, over the limit of {MAX_BOOK_LEVELS}",
                side.len()
            ),
        );
    }
    for l in side {
        positive(field, l.price)?;
        if l.volume <= 0 {
            return fail(
                field,
                format!("level at {} has volume {}", l.price, l.volume),
            );
        }
    }
    let ordered = side.windows(2).all(|w| {
        if descending {
            w[0].price > w[1].price
        } else {
            w[0].price < w[1].price
        }
    });
    if !ordered {
        return fail(field, "levels are not ordered best first");
    }
    Ok(())
}

fn book(b: &OrderBookSnapshot) -> Check {
    id("instrument_id", &b.instrument_id)?;
    timestamp("datetime", b.datetime)?;
    levels("bids", &b.bids, true)?;
    levels("asks", &b.asks, false)
}

/// Checks one record.
pub fn validate(index: usize, record: &Record) -> Result<(), RecordError> {
    let result = match record {
        Record::OrderInsert(o) => order_insert(o),
        Record::OrderUpdate(u) => order_update(u),
        Record::TradeExecuted(t) => trade(t),
        Record::AccountUpdate(a) => account(a),
        Record::PositionUpdate(p) => position(p),
        Record::Tick(t) => tick(t),
        Record::OrderBookSnapshot(b) => book(b),
    };
    result.map_err(|(field, reason)| RecordError {
        index,
        kind: record.kind().name(),
        field,
        reason,
    })
}

/// Checks every record of a batch; the first failure refuses the whole batch.
pub fn validate_batch(records: &[Record]) -> Result<(), RecordError> {
    records
        .iter()
        .enumerate()
        .try_for_each(|(i, r)| validate(i, r))
}
