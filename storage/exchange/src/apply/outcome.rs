//! What applying one record did, as stored in the journal.

use rkyv::{Archive, Deserialize, Serialize};

/// What applying one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum Outcome {
    /// The order was stored; `merged_updates` parked updates were applied to it.
    OrderInserted {
        /// Parked updates merged into the new order.
        merged_updates: u32,
    },
    /// An order with this id already exists; nothing changed.
    DuplicateOrder,
    /// The stored order was updated.
    OrderUpdated,
    /// The order is not there yet; the update waits for it.
    UpdateParked,
    /// The trade was recorded (in both indexes).
    TradeRecorded,
    /// The account's state was replaced.
    AccountReplaced,
    /// The position was replaced.
    PositionReplaced,
    /// The tick was recorded.
    TickRecorded,
    /// The book snapshot was recorded.
    BookRecorded,
}
