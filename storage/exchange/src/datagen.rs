//! A generator of realistic exchange data, for tests, benchmarks and demos.
//!
//! For each trading day it walks through the sessions of every instrument (night sessions on
//! the evening before), producing about two ticks per second per instrument with a random-walk
//! price, cumulative volume and turnover, open interest and five book levels; and, among a set
//! of users, orders that are either filled (a trade for each side, sharing an exchange trade id,
//! then an update finishing the order and new account and position states) or cancelled. Now
//! and then an order update is delivered before its order, as happens between services.
//!
//! Output is a stream of batches (one per half second of market time), deterministic for a
//! seed.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::calendar::TradingCalendar;
use crate::record::{
    AccountUpdate, Direction, Level, Offset, OrderBookSnapshot, OrderInsert, OrderStatus,
    OrderUpdate, PositionUpdate, PriceType, Record, Tick, TimeCondition, TradeExecuted,
    VolumeCondition, TICK_LEVELS,
};

const NANOS: i64 = 1_000_000_000;
const STEP: i64 = NANOS / 2;

/// Instruments the generator draws from: id, exchange, starting price, price tick.
const UNIVERSE: &[(&str, &str, f64, f64)] = &[
    ("IF2412", "CFFEX", 3920.0, 0.2),
    ("cu2501", "SHFE", 74_500.0, 10.0),
    ("TA501", "CZCE", 4_720.0, 2.0),
    ("IC2412", "CFFEX", 5_880.0, 0.2),
    ("au2502", "SHFE", 612.0, 0.02),
    ("m2505", "DCE", 2_810.0, 1.0),
    ("rb2505", "SHFE", 3_320.0, 1.0),
    ("IH2412", "CFFEX", 2_690.0, 0.2),
    ("i2505", "DCE", 780.0, 0.5),
    ("MA501", "CZCE", 2_530.0, 1.0),
    ("sc2501", "INE", 548.0, 0.1),
    ("IM2412", "CFFEX", 6_210.0, 0.2),
    ("al2501", "SHFE", 20_300.0, 5.0),
    ("SA501", "CZCE", 1_420.0, 1.0),
    ("T2503", "CFFEX", 107.5, 0.005),
    ("ag2502", "SHFE", 7_650.0, 1.0),
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of instruments (taken from a fixed universe; above its size, later contract
    /// months of the same products are added).
    pub instruments: usize,
    /// Number of trading users.
    pub users: usize,
    /// Chance per instrument per half second that an order arrives.
    pub order_rate: f64,
    /// Chance an order update is delivered before its order.
    pub reorder_rate: f64,
    /// Write a book snapshot every this many ticks of an instrument (0 for none).
    pub book_every: u32,
    /// User ids are this prefix and a four-digit number (`u0001`).
    pub user_prefix: String,
    /// Added to every instrument's contract number (`cu2501` becomes `cu3501` for 1000): a
    /// second generator with its own shift writes instruments the first never touches.
    pub contract_shift: u32,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            instruments: 4,
            users: 20,
            order_rate: 0.05,
            reorder_rate: 0.05,
            book_every: 20,
            user_prefix: "u".into(),
            contract_shift: 0,
        }
    }
}

struct Instrument {
    id: String,
    exchange: String,
    tick_size: f64,
    multiplier: f64,
    price: f64,
    open: f64,
    high: f64,
    low: f64,
    volume: i64,
    amount: f64,
    open_interest: i64,
    sequence: u64,
    ticks: u32,
    settle: f64,
}

#[derive(Default)]
struct UserBook {
    account: AccountUpdate,
    positions: HashMap<String, PositionUpdate>,
    orders: u64,
    trades: u64,
}

/// The generator.
pub struct ExchangeGen {
    cfg: GenConfig,
    calendar: TradingCalendar,
    rng: SmallRng,
    instruments: Vec<Instrument>,
    users: Vec<UserBook>,
    exchange_trades: u64,
}

impl std::fmt::Debug for ExchangeGen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeGen")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl ExchangeGen {
    /// A generator for `cfg`, using `calendar` for sessions and multipliers.
    pub fn new(cfg: GenConfig, calendar: TradingCalendar) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let instruments = (0..cfg.instruments.max(1))
            .map(|i| {
                let (id, exchange, price, tick) = UNIVERSE[i % UNIVERSE.len()];
                // Beyond the universe, take later contract months of the same products.
                let id = match i / UNIVERSE.len() + cfg.contract_shift as usize {
                    0 => id.to_string(),
                    k => {
                        let digits = id.trim_start_matches(|c: char| c.is_ascii_alphabetic());
                        let product = &id[..id.len() - digits.len()];
                        format!("{product}{}", digits.parse::<u32>().unwrap_or(0) + k as u32)
                    }
                };
                let multiplier = calendar.multiplier(&id).unwrap_or(1.0);
                let price = price * (1.0 + rng.random_range(-0.01..0.01));
                Instrument {
                    id,
                    exchange: exchange.to_string(),
                    tick_size: tick,
                    multiplier,
                    price,
                    open: price,
                    high: price,
                    low: price,
                    volume: 0,
                    amount: 0.0,
                    open_interest: rng.random_range(50_000..250_000),
                    sequence: 0,
                    ticks: 0,
                    settle: price,
                }
            })
            .collect();
        let users = (0..cfg.users.max(2))
            .map(|u| UserBook {
                account: AccountUpdate {
                    user_id: format!("{}{:04}", cfg.user_prefix, u + 1),
                    currency: "CNY".into(),
                    pre_balance: 10_000_000.0,
                    static_balance: 10_000_000.0,
                    balance: 10_000_000.0,
                    available: 10_000_000.0,
                    ..AccountUpdate::default()
                },
                ..UserBook::default()
            })
            .collect();
        ExchangeGen {
            cfg,
            calendar,
            rng,
            instruments,
            users,
            exchange_trades: 0,
        }
    }

    /// The instrument ids generated.
    pub fn instrument_ids(&self) -> Vec<String> {
        self.instruments.iter().map(|i| i.id.clone()).collect()
    }

    /// Every batch of one trading day, in time order.
    pub fn trading_day(&mut self, day: u32) -> Vec<Vec<Record>> {
        let prev = self.previous_trading_day(day);
        // Every (time, instrument) step of the day, in time order.
        let mut steps: Vec<(i64, usize)> = Vec::new();
        for (i, inst) in self.instruments.iter().enumerate() {
            let Some(group) = self.calendar.group_of(&inst.id) else {
                continue;
            };
            for s in &group.sessions {
                let date = if s.is_night() { prev } else { day };
                let start = self.calendar.local_time(date, 0, 0, 0) + i64::from(s.start) * NANOS;
                let end = self.calendar.local_time(date, 0, 0, 0) + i64::from(s.end) * NANOS;
                let mut t = start;
                while t < end {
                    steps.push((t, i));
                    t += STEP;
                }
            }
        }
        steps.sort_unstable();
        for inst in &mut self.instruments {
            inst.open = inst.price;
            inst.high = inst.price;
            inst.low = inst.price;
            inst.volume = 0;
            inst.amount = 0.0;
            inst.settle = inst.price;
        }
        let mut batches: Vec<Vec<Record>> = Vec::new();
        let mut batch_time = i64::MIN;
        let mut parked: Vec<Record> = Vec::new();
        for (t, i) in steps {
            if t != batch_time {
                batch_time = t;
                batches.push(std::mem::take(&mut parked));
            }
            let jitter = self.rng.random_range(0..50_000_000);
            let records = self.step(i, t + jitter, day);
            let Some(batch) = batches.last_mut() else {
                continue;
            };
            for r in records {
                // Some order updates arrive a batch before their order.
                let early = matches!(r, Record::OrderUpdate(_))
                    && self.rng.random_bool(self.cfg.reorder_rate);
                if early {
                    let at = batch
                        .iter()
                        .position(|x| matches!(x, Record::OrderInsert(_)))
                        .unwrap_or(batch.len());
                    batch.insert(at, r);
                } else {
                    batch.push(r);
                }
            }
        }
        batches.retain(|b| !b.is_empty());
        batches
    }

    fn previous_trading_day(&self, day: u32) -> u32 {
        let mut n = crate::calendar::day_number(day) - 1;
        while !self.calendar.is_trading_day(crate::calendar::yyyymmdd(n)) {
            n -= 1;
        }
        crate::calendar::yyyymmdd(n)
    }

    fn step(&mut self, i: usize, t: i64, day: u32) -> Vec<Record> {
        let mut out = Vec::new();
        let rng = &mut self.rng;
        let inst = &mut self.instruments[i];
        let moves: i32 = rng.random_range(-3..=3);
        inst.price = (inst.price + f64::from(moves) * inst.tick_size).max(inst.tick_size);
        inst.price = (inst.price / inst.tick_size).round() * inst.tick_size;
        let traded = rng.random_range(0..40);
        inst.volume += traded;
        inst.amount += inst.price * traded as f64 * inst.multiplier;
        inst.open_interest = (inst.open_interest + rng.random_range(-20..=20)).max(0);
        inst.high = inst.high.max(inst.price);
        inst.low = inst.low.min(inst.price);
        inst.sequence += 1;
        inst.ticks += 1;
        let level = |k: usize, side: f64| inst.price + side * inst.tick_size * (k as f64 + 1.0);
        let mut bid_price = [0.0; TICK_LEVELS];
        let mut ask_price = [0.0; TICK_LEVELS];
        let mut bid_volume = [0; TICK_LEVELS];
        let mut ask_volume = [0; TICK_LEVELS];
        for k in 0..TICK_LEVELS {
            bid_price[k] = level(k, -1.0);
            ask_price[k] = level(k, 1.0);
            bid_volume[k] = rng.random_range(1..60);
            ask_volume[k] = rng.random_range(1..60);
        }
        out.push(Record::Tick(Tick {
            instrument_id: inst.id.clone(),
            datetime: t,
            sequence: inst.sequence,
            trading_day: day,
            last_price: inst.price,
            open: inst.open,
            highest: inst.high,
            lowest: inst.low,
            volume: inst.volume,
            amount: inst.amount,
            open_interest: inst.open_interest,
            bid_price,
            bid_volume,
            ask_price,
            ask_volume,
            upper_limit: inst.settle * 1.1,
            lower_limit: inst.settle * 0.9,
        }));
        if self.cfg.book_every > 0 && inst.ticks.is_multiple_of(self.cfg.book_every) {
            out.push(Record::OrderBookSnapshot(OrderBookSnapshot {
                instrument_id: inst.id.clone(),
                datetime: t,
                bids: (0..TICK_LEVELS)
                    .map(|k| Level {
                        price: bid_price[k],
                        volume: bid_volume[k],
                    })
                    .collect(),
                asks: (0..TICK_LEVELS)
                    .map(|k| Level {
                        price: ask_price[k],
                        volume: ask_volume[k],
                    })
                    .collect(),
            }));
        }
        if self.rng.random_bool(self.cfg.order_rate) {
            self.order_activity(i, t, day, &mut out);
        }
        out
    }

    fn order_activity(&mut self, i: usize, t: i64, day: u32, out: &mut Vec<Record>) {
        let n_users = self.users.len();
        let a = self.rng.random_range(0..n_users);
        let b = (a + self.rng.random_range(1..n_users)) % n_users;
        let volume = self.rng.random_range(1..=5);
        let buy = self.rng.random_bool(0.5);
        let fill = self.rng.random_bool(0.7);
        let inst = &self.instruments[i];
        let (id, exchange, price, multiplier) = (
            inst.id.clone(),
            inst.exchange.clone(),
            inst.price,
            inst.multiplier,
        );
        let order = self.new_order(a, &id, &exchange, buy, price, volume, t);
        out.push(Record::OrderInsert(order.clone()));
        if !fill {
            out.push(Record::OrderUpdate(OrderUpdate {
                user_id: order.user_id.clone(),
                order_id: order.order_id.clone(),
                status: OrderStatus::Finished,
                volume_left: volume,
                last_msg: "已撤单".into(),
                time: t + 2_000_000,
            }));
            return;
        }
        self.exchange_trades += 1;
        let exchange_trade_id = format!("E{}{:09}", day, self.exchange_trades);
        let counter = self.new_order(b, &id, &exchange, !buy, price, volume, t + 100_000);
        out.push(Record::OrderInsert(counter.clone()));
        for (user, o) in [(a, &order), (b, &counter)] {
            let direction = o.direction;
            let trade = self.fill(
                user,
                o,
                &exchange_trade_id,
                price,
                volume,
                multiplier,
                t,
                day,
            );
            out.push(Record::TradeExecuted(trade));
            out.push(Record::OrderUpdate(OrderUpdate {
                user_id: o.user_id.clone(),
                order_id: o.order_id.clone(),
                status: OrderStatus::Finished,
                volume_left: 0,
                last_msg: "全部成交".into(),
                time: t + 1_000_000,
            }));
            let u = &mut self.users[user];
            let pos = u
                .positions
                .entry(id.clone())
                .or_insert_with(|| PositionUpdate {
                    user_id: o.user_id.clone(),
                    exchange_id: exchange.clone(),
                    instrument_id: id.clone(),
                    ..PositionUpdate::default()
                });
            let cost = price * volume as f64 * multiplier;
            if direction == Direction::Buy {
                pos.volume_long_today += volume;
                pos.open_cost_long += cost;
                pos.position_cost_long += cost;
                pos.margin_long += cost * 0.12;
                let v = pos.volume_long_today + pos.volume_long_his;
                pos.open_price_long = pos.open_cost_long / (v as f64 * multiplier);
                pos.position_price_long = pos.open_price_long;
            } else {
                pos.volume_short_today += volume;
                pos.open_cost_short += cost;
                pos.position_cost_short += cost;
                pos.margin_short += cost * 0.12;
                let v = pos.volume_short_today + pos.volume_short_his;
                pos.open_price_short = pos.open_cost_short / (v as f64 * multiplier);
                pos.position_price_short = pos.open_price_short;
            }
            out.push(Record::PositionUpdate(pos.clone()));
            let acc = &mut u.account;
            acc.margin += cost * 0.12;
            acc.balance -= cost * 0.000_023;
            acc.commission += cost * 0.000_023;
            acc.available = (acc.balance - acc.margin).max(0.0);
            acc.risk_ratio = if acc.balance > 0.0 {
                acc.margin / acc.balance
            } else {
                0.0
            };
            out.push(Record::AccountUpdate(acc.clone()));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_order(
        &mut self,
        user: usize,
        instrument: &str,
        exchange: &str,
        buy: bool,
        price: f64,
        volume: i64,
        t: i64,
    ) -> OrderInsert {
        let u = &mut self.users[user];
        u.orders += 1;
        OrderInsert {
            user_id: u.account.user_id.clone(),
            order_id: format!("o{:08}", u.orders),
            exchange_id: exchange.to_string(),
            instrument_id: instrument.to_string(),
            direction: if buy { Direction::Buy } else { Direction::Sell },
            offset: Offset::Open,
            price_type: PriceType::Limit,
            limit_price: price,
            volume_orign: volume,
            volume_left: volume,
            time_condition: TimeCondition::Gfd,
            volume_condition: VolumeCondition::Any,
            status: OrderStatus::Alive,
            insert_date_time: t,
            exchange_order_id: String::new(),
            frozen_margin: 0.0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        user: usize,
        o: &OrderInsert,
        exchange_trade_id: &str,
        price: f64,
        volume: i64,
        multiplier: f64,
        t: i64,
        day: u32,
    ) -> TradeExecuted {
        let u = &mut self.users[user];
        u.trades += 1;
        TradeExecuted {
            user_id: o.user_id.clone(),
            trade_id: format!("t{:08}", u.trades),
            order_id: o.order_id.clone(),
            exchange_id: o.exchange_id.clone(),
            instrument_id: o.instrument_id.clone(),
            exchange_trade_id: exchange_trade_id.to_string(),
            direction: o.direction,
            offset: o.offset,
            price,
            volume,
            commission: price * volume as f64 * multiplier * 0.000_023,
            trade_date_time: t + 500_000,
            trading_day: day,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::validate_batch;

    #[test]
    fn a_day_is_valid_realistic_and_deterministic() {
        let cfg = GenConfig {
            instruments: 3,
            ..GenConfig::default()
        };
        let day = |cfg: &GenConfig| {
            ExchangeGen::new(cfg.clone(), TradingCalendar::builtin()).trading_day(20241202)
        };
        let batches = day(&cfg);
        assert_eq!(batches, day(&cfg), "same seed, same data");
        let mut ticks = 0;
        let mut per_kind = HashMap::new();
        for b in &batches {
            validate_batch(b).unwrap();
            for r in b {
                *per_kind.entry(r.kind()).or_insert(0) += 1;
                if let Record::Tick(t) = r {
                    ticks += 1;
                    assert_eq!(t.trading_day, 20241202);
                }
            }
        }
        // IF 4h, cu 4h15 + 4h night, TA 3h45 + 2h night, at two ticks per second.
        let expected =
            2 * (4 * 3600 + (3 * 3600 + 45 * 60 + 4 * 3600) + (3 * 3600 + 45 * 60 + 2 * 3600));
        assert_eq!(ticks, expected);
        assert!(per_kind.len() == 7, "{per_kind:?}");
    }

    #[test]
    fn a_shifted_generator_has_instruments_and_users_of_its_own() {
        let shifted = GenConfig {
            instruments: 20,
            user_prefix: "b".into(),
            contract_shift: 1000,
            ..GenConfig::default()
        };
        let plain = GenConfig {
            instruments: 20,
            ..GenConfig::default()
        };
        let cal = TradingCalendar::builtin();
        let ids = |cfg: &GenConfig| ExchangeGen::new(cfg.clone(), cal.clone()).instrument_ids();
        let (a, b) = (ids(&plain), ids(&shifted));
        assert_eq!(&a[..2], ["IF2412", "cu2501"]);
        assert_eq!(&a[16..18], ["IF2413", "cu2502"]);
        assert_eq!(&b[..2], ["IF3412", "cu3501"]);
        assert!(a.iter().all(|i| !b.contains(i)), "{a:?} {b:?}");
        let mut gen = ExchangeGen::new(shifted, cal.clone());
        let mut users = std::collections::BTreeSet::new();
        let mut instruments = std::collections::BTreeSet::new();
        assert!(b.iter().all(|i| cal.group_of(i).is_some()), "{b:?}");
        for r in gen.trading_day(20241202).into_iter().flatten() {
            match r {
                Record::Tick(t) => {
                    instruments.insert(t.instrument_id);
                }
                Record::OrderInsert(o) => {
                    users.insert(o.user_id);
                }
                _ => {}
            }
        }
        assert!(users.iter().all(|u| u.starts_with('b')), "{users:?}");
        assert!(!users.is_empty());
        assert!(instruments.iter().all(|i| b.contains(i)), "{instruments:?}");
        assert_eq!(instruments.len(), 20);
    }
}
