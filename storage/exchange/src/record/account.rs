//! Accounts and positions: the latest state replaces the previous one.

use rkyv::{Archive, Deserialize, Serialize};

/// An account's balances. Identity: `(user_id, currency)`.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct AccountUpdate {
    /// The account holder.
    pub user_id: String,
    /// Currency code (`CNY`).
    pub currency: String,
    /// Balance at the start of the day.
    pub pre_balance: f64,
    /// Deposits today.
    pub deposit: f64,
    /// Withdrawals today.
    pub withdraw: f64,
    /// Start-of-day balance after deposits and withdrawals.
    pub static_balance: f64,
    /// Profit realised by closing positions.
    pub close_profit: f64,
    /// Commission paid.
    pub commission: f64,
    /// Option premium paid or received.
    pub premium: f64,
    /// Mark-to-market profit of open positions.
    pub position_profit: f64,
    /// Floating profit of open positions.
    pub float_profit: f64,
    /// Current balance.
    pub balance: f64,
    /// Margin in use.
    pub margin: f64,
    /// Margin frozen by working orders.
    pub frozen_margin: f64,
    /// Commission frozen by working orders.
    pub frozen_commission: f64,
    /// Premium frozen by working orders.
    pub frozen_premium: f64,
    /// Funds available for new orders.
    pub available: f64,
    /// Margin over balance.
    pub risk_ratio: f64,
}

/// A position in one contract. Identity: `(user_id, exchange_id.instrument_id)`.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct PositionUpdate {
    /// The account holder.
    pub user_id: String,
    /// Exchange code.
    pub exchange_id: String,
    /// Contract code.
    pub instrument_id: String,
    /// Long volume opened today.
    pub volume_long_today: i64,
    /// Long volume from earlier days.
    pub volume_long_his: i64,
    /// Short volume opened today.
    pub volume_short_today: i64,
    /// Short volume from earlier days.
    pub volume_short_his: i64,
    /// Average open price of the long side.
    pub open_price_long: f64,
    /// Average open price of the short side.
    pub open_price_short: f64,
    /// Average position price (settlement-adjusted) of the long side.
    pub position_price_long: f64,
    /// Average position price of the short side.
    pub position_price_short: f64,
    /// Open cost of the long side.
    pub open_cost_long: f64,
    /// Open cost of the short side.
    pub open_cost_short: f64,
    /// Position cost of the long side.
    pub position_cost_long: f64,
    /// Position cost of the short side.
    pub position_cost_short: f64,
    /// Floating profit of the long side.
    pub float_profit_long: f64,
    /// Floating profit of the short side.
    pub float_profit_short: f64,
    /// Position profit of the long side.
    pub position_profit_long: f64,
    /// Position profit of the short side.
    pub position_profit_short: f64,
    /// Margin of the long side.
    pub margin_long: f64,
    /// Margin of the short side.
    pub margin_short: f64,
}
