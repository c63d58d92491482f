//! Trades: fills of one user's order. Both sides of an exchange trade arrive as separate
//! records sharing `exchange_trade_id`.

use rkyv::{Archive, Deserialize, Serialize};

use super::enums::{Direction, Offset};

/// A fill. Identity: `(user_id, trade_id)`.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct TradeExecuted {
    /// The account holder.
    pub user_id: String,
    /// The trade id, unique per user.
    pub trade_id: String,
    /// The order filled.
    pub order_id: String,
    /// Exchange code.
    pub exchange_id: String,
    /// Contract code.
    pub instrument_id: String,
    /// The exchange's id of the trade (shared by buyer and seller).
    pub exchange_trade_id: String,
    /// Buy or sell.
    pub direction: Direction,
    /// Open or close.
    pub offset: Offset,
    /// Fill price.
    pub price: f64,
    /// Fill volume.
    pub volume: i64,
    /// Commission charged.
    pub commission: f64,
    /// When it traded (epoch nanoseconds).
    pub trade_date_time: i64,
    /// The trading day it belongs to (`YYYYMMDD`).
    pub trading_day: u32,
}
