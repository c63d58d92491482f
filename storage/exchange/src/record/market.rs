//! Market data: ticks and order-book snapshots of an instrument.

use rkyv::{Archive, Deserialize, Serialize};

/// Depth of the best-price levels a tick carries.
pub const TICK_LEVELS: usize = 5;

/// A market tick. Identity: `(instrument_id, datetime, sequence)`: ticks with the same
/// timestamp are told apart by their sequence number.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct Tick {
    /// Contract code.
    pub instrument_id: String,
    /// Exchange timestamp (epoch nanoseconds).
    pub datetime: i64,
    /// The feed's sequence number, ordering ticks with equal timestamps.
    pub sequence: u64,
    /// The trading day it belongs to (`YYYYMMDD`; a night session belongs to the next day).
    pub trading_day: u32,
    /// Last traded price.
    pub last_price: f64,
    /// Opening price of the day.
    pub open: f64,
    /// Highest price of the day.
    pub highest: f64,
    /// Lowest price of the day.
    pub lowest: f64,
    /// Volume traded so far today (cumulative).
    pub volume: i64,
    /// Turnover so far today (cumulative).
    pub amount: f64,
    /// Open interest.
    pub open_interest: i64,
    /// Bid prices, best first (0 for an empty level).
    pub bid_price: [f64; TICK_LEVELS],
    /// Bid volumes, best first.
    pub bid_volume: [i64; TICK_LEVELS],
    /// Ask prices, best first (0 for an empty level).
    pub ask_price: [f64; TICK_LEVELS],
    /// Ask volumes, best first.
    pub ask_volume: [i64; TICK_LEVELS],
    /// Upper price limit of the day.
    pub upper_limit: f64,
    /// Lower price limit of the day.
    pub lower_limit: f64,
}

/// One price level of a book.
#[derive(Debug, Clone, Copy, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct Level {
    /// Price.
    pub price: f64,
    /// Volume resting at that price.
    pub volume: i64,
}

/// A full order-book snapshot. Identity: `(instrument_id, datetime)`.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct OrderBookSnapshot {
    /// Contract code.
    pub instrument_id: String,
    /// Exchange timestamp (epoch nanoseconds).
    pub datetime: i64,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
}
