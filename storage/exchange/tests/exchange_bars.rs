//! OHLCV bars against hand-computed values: ticks that cross a night session past midnight, a
//! mid-morning break, the lunch break, a closing tick and a new trading day; and trades where
//! both sides of an exchange trade must count once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qastore_exchange::apply::apply;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::query::bars::{bars, Bar, BarSource, Period};
use qastore_exchange::query::TimeRange;
use qastore_exchange::record::{samples, Direction, Offset, Record, Tick, TradeExecuted};
use qastore_lsm::vfs::SimVfs;
use qastore_lsm::{Engine, EngineConfig};

fn cal() -> TradingCalendar {
    TradingCalendar::builtin()
}

fn tick(day: u32, t: i64, price: f64, volume: i64, amount: f64, oi: i64, seq: u64) -> Record {
    Record::Tick(Tick {
        instrument_id: "cu2501".into(),
        datetime: t,
        sequence: seq,
        trading_day: day,
        last_price: price,
        open: 100.0,
        highest: 110.0,
        lowest: 90.0,
        volume,
        amount,
        open_interest: oi,
        ..Tick::default()
    })
}

/// Copper (night session to 01:00) around the weekend of 2024-11-29.
fn copper_engine() -> Engine {
    let c = cal();
    let at = |d, h, m, s| c.local_time(d, h, m, s);
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", EngineConfig::default()).unwrap();
    let ticks = vec![
        // Trading day 2024-12-02 begins with Friday's night session.
        tick(20241202, at(20241129, 20, 59, 0), 100.0, 10, 1000.0, 500, 1), // auction
        tick(20241202, at(20241129, 21, 30, 0), 102.0, 15, 1510.0, 505, 2),
        tick(20241202, at(20241130, 0, 10, 0), 101.0, 25, 2520.0, 510, 3), // past midnight
        tick(
            20241202,
            at(20241202, 9, 0, 0) + 500_000_000,
            103.0,
            30,
            3035.0,
            512,
            4,
        ),
        tick(20241202, at(20241202, 10, 14, 59), 99.0, 40, 4025.0, 520, 5),
        tick(20241202, at(20241202, 10, 31, 0), 98.0, 42, 4221.0, 521, 6),
        tick(20241202, at(20241202, 12, 0, 0), 50.0, 43, 4270.0, 522, 7), // lunch: no bar
        tick(20241202, at(20241202, 13, 30, 0), 100.0, 50, 4970.0, 525, 8),
        tick(20241202, at(20241202, 15, 0, 0), 101.0, 55, 5475.0, 530, 9), // closing tick
        // Monday night opens trading day 2024-12-03; the counters restart.
        tick(20241203, at(20241202, 21, 0, 1), 104.0, 5, 520.0, 530, 10),
        tick(20241203, at(20241202, 21, 10, 0), 105.0, 8, 835.0, 531, 11),
    ];
    for (i, t) in ticks.into_iter().enumerate() {
        apply(&e, &[t], i as u64 + 1).unwrap();
    }
    e
}

#[allow(clippy::too_many_arguments)]
fn bar(
    day: u32,
    start: i64,
    end: i64,
    ohlc: [f64; 4],
    volume: i64,
    amount: f64,
    oi: (i64, i64),
    count: u64,
) -> Bar {
    Bar {
        trading_day: day,
        start,
        end,
        open: ohlc[0],
        high: ohlc[1],
        low: ohlc[2],
        close: ohlc[3],
        volume,
        amount,
        open_interest_open: Some(oi.0),
        open_interest_close: Some(oi.1),
        count,
    }
}

#[test]
fn hourly_tick_bars_are_cut_at_sessions_and_counters_restart_each_day() {
    let e = copper_engine();
    let c = cal();
    let at = |d, h, m, s| c.local_time(d, h, m, s);
    let got = bars(
        &e,
        &c,
        "cu2501",
        BarSource::Ticks,
        Period::Hour1,
        TimeRange::all(),
    )
    .unwrap();
    let want = vec![
        bar(
            20241202,
            at(20241129, 21, 0, 0),
            at(20241129, 22, 0, 0),
            [100.0, 102.0, 100.0, 102.0],
            15,
            1510.0,
            (500, 505),
            2,
        ),
        bar(
            20241202,
            at(20241130, 0, 0, 0),
            at(20241130, 1, 0, 0),
            [101.0; 4],
            10,
            1010.0,
            (510, 510),
            1,
        ),
        bar(
            20241202,
            at(20241202, 9, 0, 0),
            at(20241202, 10, 0, 0),
            [103.0; 4],
            5,
            515.0,
            (512, 512),
            1,
        ),
        bar(
            20241202,
            at(20241202, 10, 0, 0),
            at(20241202, 10, 15, 0),
            [99.0; 4],
            10,
            990.0,
            (520, 520),
            1,
        ),
        bar(
            20241202,
            at(20241202, 10, 30, 0),
            at(20241202, 11, 0, 0),
            [98.0; 4],
            2,
            196.0,
            (521, 521),
            1,
        ),
        // The lunch tick's one lot counts here, its price nowhere.
        bar(
            20241202,
            at(20241202, 13, 30, 0),
            at(20241202, 14, 0, 0),
            [100.0; 4],
            8,
            749.0,
            (525, 525),
            1,
        ),
        bar(
            20241202,
            at(20241202, 14, 0, 0),
            at(20241202, 15, 0, 0),
            [101.0; 4],
            5,
            505.0,
            (530, 530),
            1,
        ),
        bar(
            20241203,
            at(20241202, 21, 0, 0),
            at(20241202, 22, 0, 0),
            [104.0, 105.0, 104.0, 105.0],
            8,
            835.0,
            (530, 531),
            2,
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn daily_bars_are_keyed_by_trading_day() {
    let e = copper_engine();
    let c = cal();
    let at = |d, h, m, s| c.local_time(d, h, m, s);
    let got = bars(
        &e,
        &c,
        "cu2501",
        BarSource::Ticks,
        Period::Day1,
        TimeRange::all(),
    )
    .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].trading_day, 20241202);
    assert_eq!(
        (got[0].open, got[0].high, got[0].low, got[0].close),
        (100.0, 103.0, 98.0, 101.0)
    );
    assert_eq!(
        (got[0].volume, got[0].amount, got[0].count),
        (55, 5475.0, 8)
    );
    assert_eq!(
        (got[0].open_interest_open, got[0].open_interest_close),
        (Some(500), Some(530))
    );
    assert_eq!(
        (got[0].start, got[0].end),
        (at(20241129, 20, 59, 0), at(20241202, 15, 0, 0) + 1)
    );
    assert_eq!(
        (got[1].trading_day, got[1].volume, got[1].close),
        (20241203, 8, 105.0)
    );
}

#[test]
fn a_range_starting_mid_day_takes_deltas_from_the_tick_before_it() {
    let e = copper_engine();
    let c = cal();
    let at = |d, h, m, s| c.local_time(d, h, m, s);
    let range = TimeRange::new(at(20241202, 10, 30, 0), at(20241202, 15, 5, 0));
    let got = bars(&e, &c, "cu2501", BarSource::Ticks, Period::Minute30, range).unwrap();
    let volumes: Vec<_> = got.iter().map(|b| (b.start, b.volume)).collect();
    assert_eq!(
        volumes,
        vec![
            (at(20241202, 10, 30, 0), 2),
            (at(20241202, 13, 30, 0), 8),
            (at(20241202, 14, 30, 0), 5),
        ]
    );
    // Every period covers the same volume.
    for p in Period::all() {
        let all = bars(&e, &c, "cu2501", BarSource::Ticks, p, TimeRange::all()).unwrap();
        assert_eq!(all.iter().map(|b| b.volume).sum::<i64>(), 55 + 8, "{p:?}");
    }
}

#[test]
fn trade_bars_count_each_exchange_trade_once() {
    let c = cal();
    let at = |h, m, s| c.local_time(20241202, h, m, s);
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", EngineConfig::default()).unwrap();
    let Record::TradeExecuted(base) = samples::records()[2].clone() else {
        unreachable!()
    };
    let side = |user: &str, id: &str, xid: &str, t: i64, price: f64, volume: i64, dir| {
        Record::TradeExecuted(TradeExecuted {
            user_id: user.into(),
            trade_id: id.into(),
            exchange_trade_id: xid.into(),
            trade_date_time: t,
            price,
            volume,
            direction: dir,
            offset: Offset::Open,
            ..base.clone()
        })
    };
    let trades = vec![
        side("u1", "t1", "E1", at(9, 30, 10), 3900.0, 2, Direction::Buy),
        side("u2", "t9", "E1", at(9, 30, 10), 3900.0, 2, Direction::Sell),
        side("u1", "t2", "E2", at(11, 29, 59), 3910.0, 1, Direction::Buy),
        side("u3", "t4", "E2", at(11, 29, 59), 3910.0, 1, Direction::Sell),
        side(
            "u1",
            "t3",
            "E3",
            at(13, 0, 0) + 200_000_000,
            3905.0,
            3,
            Direction::Buy,
        ),
    ];
    apply(&e, &trades, 1).unwrap();
    let got = bars(
        &e,
        &c,
        "IF2412",
        BarSource::Trades,
        Period::Hour1,
        TimeRange::all(),
    )
    .unwrap();
    let summary: Vec<_> = got
        .iter()
        .map(|b| {
            (
                b.start,
                b.end,
                b.close,
                b.volume,
                b.amount,
                b.count,
                b.open_interest_open,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                at(9, 30, 0),
                at(10, 0, 0),
                3900.0,
                2,
                3900.0 * 2.0 * 300.0,
                1,
                None
            ),
            (
                at(11, 0, 0),
                at(11, 30, 0),
                3910.0,
                1,
                3910.0 * 300.0,
                1,
                None
            ),
            (
                at(13, 0, 0),
                at(14, 0, 0),
                3905.0,
                3,
                3905.0 * 3.0 * 300.0,
                1,
                None
            ),
        ]
    );
    assert!(bars(
        &e,
        &c,
        "ZZ1",
        BarSource::Trades,
        Period::Hour1,
        TimeRange::all()
    )
    .is_err());
}
