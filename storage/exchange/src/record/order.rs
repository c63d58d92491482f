//! Orders: inserted once, then updated by the exchange as they trade or end.

use rkyv::{Archive, Deserialize, Serialize};

use super::enums::{Direction, Offset, OrderStatus, PriceType, TimeCondition, VolumeCondition};

/// A new order, as the trading system accepted it. Identity: `(user_id, order_id)`.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct OrderInsert {
    /// The account holder.
    pub user_id: String,
    /// The client's order id, unique per user.
    pub order_id: String,
    /// Exchange code (`SHFE`, `CFFEX`, ...).
    pub exchange_id: String,
    /// Contract code (`cu2501`, `IF2412`, ...).
    pub instrument_id: String,
    /// Buy or sell.
    pub direction: Direction,
    /// Open or close.
    pub offset: Offset,
    /// How the order is priced.
    pub price_type: PriceType,
    /// The limit price (0 for orders that are not limit orders).
    pub limit_price: f64,
    /// Volume ordered.
    pub volume_orign: i64,
    /// Volume not yet filled.
    pub volume_left: i64,
    /// How long the order stays active.
    pub time_condition: TimeCondition,
    /// How much must fill.
    pub volume_condition: VolumeCondition,
    /// Alive or finished.
    pub status: OrderStatus,
    /// When the order was inserted (epoch nanoseconds).
    pub insert_date_time: i64,
    /// The exchange's order id (empty until the exchange assigns one).
    pub exchange_order_id: String,
    /// Margin frozen for the order.
    pub frozen_margin: f64,
}

/// A change to an order reported by the exchange. Identity: `(user_id, order_id)`.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct OrderUpdate {
    /// The account holder.
    pub user_id: String,
    /// The order changed.
    pub order_id: String,
    /// Alive or finished.
    pub status: OrderStatus,
    /// Volume not yet filled.
    pub volume_left: i64,
    /// The exchange's last message about the order.
    pub last_msg: String,
    /// When the change happened (epoch nanoseconds).
    pub time: i64,
}

/// An order as stored: the insert with every update applied.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct OrderState {
    /// The order, with status and volume left as of the last update.
    pub order: OrderInsert,
    /// The last message from the exchange.
    pub last_msg: String,
    /// Time of the last update (the insert time if none).
    pub updated_at: i64,
    /// Updates applied so far.
    pub updates: u32,
}

impl OrderState {
    /// The state of a freshly inserted order.
    pub fn new(order: OrderInsert) -> Self {
        let updated_at = order.insert_date_time;
        OrderState {
            order,
            last_msg: String::new(),
            updated_at,
            updates: 0,
        }
    }

    /// Applies an update.
    pub fn apply(&mut self, u: &OrderUpdate) {
        self.order.status = u.status;
        self.order.volume_left = u.volume_left;
        self.last_msg.clone_from(&u.last_msg);
        self.updated_at = u.time;
        self.updates += 1;
    }
}
