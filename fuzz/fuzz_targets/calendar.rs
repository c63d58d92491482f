//! A trading calendar's TOML text, as a replicated `SetCalendar` command carries it and a node
//! reads it from its config: parsed and checked, then asked about a few fixed instants.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_exchange::calendar::TradingCalendar;

/// 2024-06-03 10:00 and 2024-06-03 21:30 in China Standard Time, as epoch nanoseconds.
const INSTANTS: [i64; 2] = [1_717_380_000_000_000_000, 1_717_421_400_000_000_000];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(calendar) = TradingCalendar::from_toml(text) else {
        return;
    };
    let instrument = calendar
        .groups()
        .iter()
        .flat_map(|g| g.multipliers.keys())
        .next()
        .map_or_else(|| "IF2412".to_string(), |p| format!("{p}2412"));
    for ts in INSTANTS {
        let _ = calendar.trading_day_of(&instrument, ts);
        let _ = calendar.bar_bounds(&instrument, ts, 60);
        let _ = calendar.trading_day_at(ts);
    }
    let _ = calendar.local_time(20240603, 9, 30, 0);
    let _ = calendar.trading_day_end(20240603);
});
