//! Exchange records between the public API's messages and the storage crate's types.
//!
//! From the wire, every enum value is checked (an unknown one is an error naming the record's
//! index and field) and a tick's levels must number exactly five; everything else is checked
//! by the storage crate's validation, which the node runs before proposing.

use qastore_exchange::apply::{JournalEntry, Outcome};
use qastore_exchange::record::{
    AccountUpdate, Direction, Level, Offset, OrderBookSnapshot, OrderInsert, OrderState,
    OrderStatus, OrderUpdate, PositionUpdate, PriceType, Record, Tick, TimeCondition,
    TradeExecuted, VolumeCondition, TICK_LEVELS,
};
use qastore_proto::v1 as pb;

use crate::error::ApiError;

/// Reads a batch of records from the wire, naming the record and field of the first problem.
pub fn records_from_pb(records: Vec<pb::Record>) -> Result<Vec<Record>, ApiError> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| record_from_pb(r).map_err(|(field, why)| bad_record(i, field, why)))
        .collect()
}

fn bad_record(index: usize, field: &str, why: String) -> ApiError {
    ApiError::InvalidArgument(format!("field records[{index}].{field}: {why}"))
}

type Field<T> = Result<T, (&'static str, String)>;

macro_rules! enum_field {
    ($ty:ty, $value:expr, $field:literal) => {
        <$ty>::from_code($value, $field)
            .map_err(|e| ($field, format!("unknown value {}", e.value)))?
    };
}

fn levels<const N: usize, T: Copy + Default>(values: Vec<T>, field: &'static str) -> Field<[T; N]> {
    if values.len() != N {
        return Err((
            field,
            format!("has {} levels, must have exactly {N}", values.len()),
        ));
    }
    let mut out = [T::default(); N];
    out.copy_from_slice(&values);
    Ok(out)
}

/// One record from the wire.
pub fn record_from_pb(r: pb::Record) -> Field<Record> {
    use pb::record::Kind;
    let Some(kind) = r.kind else {
        return Err(("kind", "no record kind is set".into()));
    };
    Ok(match kind {
        Kind::OrderInsert(o) => Record::OrderInsert(OrderInsert {
            user_id: o.user_id,
            order_id: o.order_id,
            exchange_id: o.exchange_id,
            instrument_id: o.instrument_id,
            direction: enum_field!(Direction, o.direction, "order_insert.direction"),
            offset: enum_field!(Offset, o.offset, "order_insert.offset"),
            price_type: enum_field!(PriceType, o.price_type, "order_insert.price_type"),
            limit_price: o.limit_price,
            volume_orign: o.volume_orign,
            volume_left: o.volume_left,
            time_condition: enum_field!(
                TimeCondition,
                o.time_condition,
                "order_insert.time_condition"
            ),
            volume_condition: enum_field!(
                VolumeCondition,
                o.volume_condition,
                "order_insert.volume_condition"
            ),
            status: enum_field!(OrderStatus, o.status, "order_insert.status"),
            insert_date_time: o.insert_date_time,
            exchange_order_id: o.exchange_order_id,
            frozen_margin: o.frozen_margin,
        }),
        Kind::OrderUpdate(u) => Record::OrderUpdate(OrderUpdate {
            user_id: u.user_id,
            order_id: u.order_id,
            status: enum_field!(OrderStatus, u.status, "order_update.status"),
            volume_left: u.volume_left,
            last_msg: u.last_msg,
            time: u.time,
        }),
        Kind::TradeExecuted(t) => Record::TradeExecuted(TradeExecuted {
            user_id: t.user_id,
            trade_id: t.trade_id,
            order_id: t.order_id,
            exchange_id: t.exchange_id,
            instrument_id: t.instrument_id,
            exchange_trade_id: t.exchange_trade_id,
            direction: enum_field!(Direction, t.direction, "trade_executed.direction"),
            offset: enum_field!(Offset, t.offset, "trade_executed.offset"),
            price: t.price,
            volume: t.volume,
            commission: t.commission,
            trade_date_time: t.trade_date_time,
            trading_day: t.trading_day,
        }),
        Kind::AccountUpdate(a) => Record::AccountUpdate(AccountUpdate {
            user_id: a.user_id,
            currency: a.currency,
            pre_balance: a.pre_balance,
            deposit: a.deposit,
            withdraw: a.withdraw,
            static_balance: a.static_balance,
            close_profit: a.close_profit,
            commission: a.commission,
            premium: a.premium,
            position_profit: a.position_profit,
            float_profit: a.float_profit,
            balance: a.balance,
            margin: a.margin,
            frozen_margin: a.frozen_margin,
            frozen_commission: a.frozen_commission,
            frozen_premium: a.frozen_premium,
            available: a.available,
            risk_ratio: a.risk_ratio,
        }),
        Kind::PositionUpdate(p) => Record::PositionUpdate(PositionUpdate {
            user_id: p.user_id,
            exchange_id: p.exchange_id,
            instrument_id: p.instrument_id,
            volume_long_today: p.volume_long_today,
            volume_long_his: p.volume_long_his,
            volume_short_today: p.volume_short_today,
            volume_short_his: p.volume_short_his,
            open_price_long: p.open_price_long,
            open_price_short: p.open_price_short,
            position_price_long: p.position_price_long,
            position_price_short: p.position_price_short,
            open_cost_long: p.open_cost_long,
            open_cost_short: p.open_cost_short,
            position_cost_long: p.position_cost_long,
            position_cost_short: p.position_cost_short,
            float_profit_long: p.float_profit_long,
            float_profit_short: p.float_profit_short,
            position_profit_long: p.position_profit_long,
            position_profit_short: p.position_profit_short,
            margin_long: p.margin_long,
            margin_short: p.margin_short,
        }),
        Kind::Tick(t) => Record::Tick(Tick {
            instrument_id: t.instrument_id,
            datetime: t.datetime,
            sequence: t.sequence,
            trading_day: t.trading_day,
            last_price: t.last_price,
            open: t.open,
            highest: t.highest,
            lowest: t.lowest,
            volume: t.volume,
            amount: t.amount,
            open_interest: t.open_interest,
            bid_price: levels::<TICK_LEVELS, f64>(t.bid_price, "tick.bid_price")?,
            bid_volume: levels::<TICK_LEVELS, i64>(t.bid_volume, "tick.bid_volume")?,
            ask_price: levels::<TICK_LEVELS, f64>(t.ask_price, "tick.ask_price")?,
            ask_volume: levels::<TICK_LEVELS, i64>(t.ask_volume, "tick.ask_volume")?,
            upper_limit: t.upper_limit,
            lower_limit: t.lower_limit,
        }),
        Kind::OrderBookSnapshot(b) => Record::OrderBookSnapshot(OrderBookSnapshot {
            instrument_id: b.instrument_id,
            datetime: b.datetime,
            bids: b.bids.into_iter().map(level_from_pb).collect(),
            asks: b.asks.into_iter().map(level_from_pb).collect(),
        }),
    })
}

fn level_from_pb(l: pb::Level) -> Level {
    Level {
        price: l.price,
        volume: l.volume,
    }
}

fn level_to_pb(l: &Level) -> pb::Level {
    pb::Level {
        price: l.price,
        volume: l.volume,
    }
}

/// An order as the API shows it.
pub fn order_insert_to_pb(o: &OrderInsert) -> pb::OrderInsert {
    pb::OrderInsert {
        user_id: o.user_id.clone(),
        order_id: o.order_id.clone(),
        exchange_id: o.exchange_id.clone(),
        instrument_id: o.instrument_id.clone(),
        direction: o.direction.code(),
        offset: o.offset.code(),
        price_type: o.price_type.code(),
        limit_price: o.limit_price,
        volume_orign: o.volume_orign,
        volume_left: o.volume_left,
        time_condition: o.time_condition.code(),
        volume_condition: o.volume_condition.code(),
        status: o.status.code(),
        insert_date_time: o.insert_date_time,
        exchange_order_id: o.exchange_order_id.clone(),
        frozen_margin: o.frozen_margin,
    }
}

/// A trade as the API shows it.
pub fn trade_to_pb(t: &TradeExecuted) -> pb::TradeExecuted {
    pb::TradeExecuted {
        user_id: t.user_id.clone(),
        trade_id: t.trade_id.clone(),
        order_id: t.order_id.clone(),
        exchange_id: t.exchange_id.clone(),
        instrument_id: t.instrument_id.clone(),
        exchange_trade_id: t.exchange_trade_id.clone(),
        direction: t.direction.code(),
        offset: t.offset.code(),
        price: t.price,
        volume: t.volume,
        commission: t.commission,
        trade_date_time: t.trade_date_time,
        trading_day: t.trading_day,
    }
}

/// An account as the API shows it.
pub fn account_to_pb(a: &AccountUpdate) -> pb::AccountUpdate {
    pb::AccountUpdate {
        user_id: a.user_id.clone(),
        currency: a.currency.clone(),
        pre_balance: a.pre_balance,
        deposit: a.deposit,
        withdraw: a.withdraw,
        static_balance: a.static_balance,
        close_profit: a.close_profit,
        commission: a.commission,
        premium: a.premium,
        position_profit: a.position_profit,
        float_profit: a.float_profit,
        balance: a.balance,
        margin: a.margin,
        frozen_margin: a.frozen_margin,
        frozen_commission: a.frozen_commission,
        frozen_premium: a.frozen_premium,
        available: a.available,
        risk_ratio: a.risk_ratio,
    }
}

/// A position as the API shows it.
pub fn position_to_pb(p: &PositionUpdate) -> pb::PositionUpdate {
    pb::PositionUpdate {
        user_id: p.user_id.clone(),
        exchange_id: p.exchange_id.clone(),
        instrument_id: p.instrument_id.clone(),
        volume_long_today: p.volume_long_today,
        volume_long_his: p.volume_long_his,
        volume_short_today: p.volume_short_today,
        volume_short_his: p.volume_short_his,
        open_price_long: p.open_price_long,
        open_price_short: p.open_price_short,
        position_price_long: p.position_price_long,
        position_price_short: p.position_price_short,
        open_cost_long: p.open_cost_long,
        open_cost_short: p.open_cost_short,
        position_cost_long: p.position_cost_long,
        position_cost_short: p.position_cost_short,
        float_profit_long: p.float_profit_long,
        float_profit_short: p.float_profit_short,
        position_profit_long: p.position_profit_long,
        position_profit_short: p.position_profit_short,
        margin_long: p.margin_long,
        margin_short: p.margin_short,
    }
}

/// A tick as the API shows it.
pub fn tick_to_pb(t: &Tick) -> pb::Tick {
    pb::Tick {
        instrument_id: t.instrument_id.clone(),
        datetime: t.datetime,
        sequence: t.sequence,
        trading_day: t.trading_day,
        last_price: t.last_price,
        open: t.open,
        highest: t.highest,
        lowest: t.lowest,
        volume: t.volume,
        amount: t.amount,
        open_interest: t.open_interest,
        bid_price: t.bid_price.to_vec(),
        bid_volume: t.bid_volume.to_vec(),
        ask_price: t.ask_price.to_vec(),
        ask_volume: t.ask_volume.to_vec(),
        upper_limit: t.upper_limit,
        lower_limit: t.lower_limit,
    }
}

/// A book snapshot as the API shows it.
pub fn book_to_pb(b: &OrderBookSnapshot) -> pb::OrderBookSnapshot {
    pb::OrderBookSnapshot {
        instrument_id: b.instrument_id.clone(),
        datetime: b.datetime,
        bids: b.bids.iter().map(level_to_pb).collect(),
        asks: b.asks.iter().map(level_to_pb).collect(),
    }
}

/// A record as the API shows it.
pub fn record_to_pb(r: &Record) -> pb::Record {
    use pb::record::Kind;
    let kind = match r {
        Record::OrderInsert(o) => Kind::OrderInsert(order_insert_to_pb(o)),
        Record::OrderUpdate(u) => Kind::OrderUpdate(pb::OrderUpdate {
            user_id: u.user_id.clone(),
            order_id: u.order_id.clone(),
            status: u.status.code(),
            volume_left: u.volume_left,
            last_msg: u.last_msg.clone(),
            time: u.time,
        }),
        Record::TradeExecuted(t) => Kind::TradeExecuted(trade_to_pb(t)),
        Record::AccountUpdate(a) => Kind::AccountUpdate(account_to_pb(a)),
        Record::PositionUpdate(p) => Kind::PositionUpdate(position_to_pb(p)),
        Record::Tick(t) => Kind::Tick(tick_to_pb(t)),
        Record::OrderBookSnapshot(b) => Kind::OrderBookSnapshot(book_to_pb(b)),
    };
    pb::Record { kind: Some(kind) }
}

/// A record's outcome as the API shows it.
pub fn outcome_to_pb(o: &Outcome) -> pb::RecordResult {
    use pb::Outcome as P;
    let (outcome, merged_updates) = match o {
        Outcome::OrderInserted { merged_updates } => (P::OrderInserted, *merged_updates),
        Outcome::DuplicateOrder => (P::DuplicateOrder, 0),
        Outcome::OrderUpdated => (P::OrderUpdated, 0),
        Outcome::UpdateParked => (P::UpdateParked, 0),
        Outcome::TradeRecorded => (P::TradeRecorded, 0),
        Outcome::AccountReplaced => (P::AccountReplaced, 0),
        Outcome::PositionReplaced => (P::PositionReplaced, 0),
        Outcome::TickRecorded => (P::TickRecorded, 0),
        Outcome::BookRecorded => (P::BookRecorded, 0),
    };
    pb::RecordResult {
        outcome: outcome as i32,
        merged_updates,
    }
}

/// The outcome an API result stands for; `None` for a value this build does not know (or
/// unspecified).
pub fn outcome_from_pb(r: &pb::RecordResult) -> Option<Outcome> {
    use pb::Outcome as P;
    Some(match P::try_from(r.outcome).ok()? {
        P::Unspecified => return None,
        P::OrderInserted => Outcome::OrderInserted {
            merged_updates: r.merged_updates,
        },
        P::DuplicateOrder => Outcome::DuplicateOrder,
        P::OrderUpdated => Outcome::OrderUpdated,
        P::UpdateParked => Outcome::UpdateParked,
        P::TradeRecorded => Outcome::TradeRecorded,
        P::AccountReplaced => Outcome::AccountReplaced,
        P::PositionReplaced => Outcome::PositionReplaced,
        P::TickRecorded => Outcome::TickRecorded,
        P::BookRecorded => Outcome::BookRecorded,
    })
}

/// A journal event as the API shows it.
pub fn journal_to_pb(e: &JournalEntry) -> pb::JournalEntry {
    pb::JournalEntry {
        log_index: e.log_index,
        ordinal: e.ordinal,
        record: Some(record_to_pb(&e.record)),
        result: Some(outcome_to_pb(&e.outcome)),
    }
}

/// An order's state as the API shows it.
pub fn order_state_to_pb(s: &OrderState) -> pb::OrderState {
    pb::OrderState {
        order: Some(order_insert_to_pb(&s.order)),
        last_msg: s.last_msg.clone(),
        updated_at: s.updated_at,
        updates: s.updates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_exchange::record::samples;

    #[test]
    fn every_sample_record_round_trips() {
        for r in samples::records() {
            let back = record_from_pb(record_to_pb(&r)).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn every_outcome_round_trips_and_unknown_ones_read_as_none() {
        let all = [
            Outcome::OrderInserted { merged_updates: 3 },
            Outcome::DuplicateOrder,
            Outcome::OrderUpdated,
            Outcome::UpdateParked,
            Outcome::TradeRecorded,
            Outcome::AccountReplaced,
            Outcome::PositionReplaced,
            Outcome::TickRecorded,
            Outcome::BookRecorded,
        ];
        for o in all {
            assert_eq!(outcome_from_pb(&outcome_to_pb(&o)), Some(o));
        }
        let unknown = pb::RecordResult {
            outcome: 99,
            merged_updates: 0,
        };
        assert_eq!(outcome_from_pb(&unknown), None);
        assert_eq!(outcome_from_pb(&pb::RecordResult::default()), None);
    }

    #[test]
    fn an_unknown_enum_value_names_the_record_and_field() {
        let mut wire: Vec<pb::Record> = samples::records().iter().map(record_to_pb).collect();
        let i = wire
            .iter()
            .position(|r| matches!(r.kind, Some(pb::record::Kind::OrderInsert(_))))
            .unwrap();
        if let Some(pb::record::Kind::OrderInsert(o)) = &mut wire[i].kind {
            o.direction = 9;
        }
        let err = records_from_pb(wire).unwrap_err().to_string();
        assert!(
            err.contains(&format!("records[{i}].order_insert.direction")) && err.contains('9'),
            "{err}"
        );
    }

    #[test]
    fn a_tick_needs_five_levels_and_a_record_needs_a_kind() {
        let tick = samples::first(|r| matches!(r, Record::Tick(_))).unwrap();
        let mut wire = record_to_pb(&tick);
        if let Some(pb::record::Kind::Tick(t)) = &mut wire.kind {
            t.ask_volume.pop();
        }
        let err = records_from_pb(vec![wire, pb::Record { kind: None }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("records[0].tick.ask_volume"), "{err}");
        let err = records_from_pb(vec![pb::Record { kind: None }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("records[0].kind"), "{err}");
    }
}
