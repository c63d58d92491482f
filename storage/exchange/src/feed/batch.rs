//! Committed events as a node hands them on: one applied write batch at a time.

use std::sync::Arc;

use super::Position;
use crate::apply::Outcome;
use crate::record::Record;

/// One committed record and what applying it did.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEvent {
    /// Its place in its batch.
    pub ordinal: u32,
    /// The record.
    pub record: Record,
    /// What applying it did.
    pub outcome: Outcome,
}

impl CommittedEvent {
    /// About how many bytes the event holds in memory (what stream buffers are bounded by).
    pub fn approx_bytes(&self) -> usize {
        let strings = match &self.record {
            Record::OrderInsert(o) => {
                o.user_id.len()
                    + o.order_id.len()
                    + o.exchange_id.len()
                    + o.instrument_id.len()
                    + o.exchange_order_id.len()
            }
            Record::OrderUpdate(u) => u.user_id.len() + u.order_id.len() + u.last_msg.len(),
            Record::TradeExecuted(t) => {
                t.user_id.len()
                    + t.trade_id.len()
                    + t.order_id.len()
                    + t.exchange_id.len()
                    + t.instrument_id.len()
                    + t.exchange_trade_id.len()
            }
            Record::AccountUpdate(a) => a.user_id.len() + a.currency.len(),
            Record::PositionUpdate(p) => {
                p.user_id.len() + p.exchange_id.len() + p.instrument_id.len()
            }
            Record::Tick(t) => t.instrument_id.len(),
            Record::OrderBookSnapshot(b) => {
                b.instrument_id.len()
                    + (b.bids.len() + b.asks.len()) * std::mem::size_of::<crate::record::Level>()
            }
        };
        std::mem::size_of::<CommittedEvent>() + strings
    }
}

/// The events of one applied write batch, in ordinal order: all of them, or (read back from
/// the journal) those from some ordinal on.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedBatch {
    /// The log index of the batch.
    pub index: u64,
    /// When the leader proposed it (epoch nanoseconds; 0 where it was not recorded).
    pub commit_ns: i64,
    /// Its events.
    pub events: Vec<CommittedEvent>,
}

impl CommittedBatch {
    /// The position of `event`.
    pub fn position_of(&self, event: &CommittedEvent) -> Position {
        Position::new(self.index, event.ordinal)
    }

    /// About how many bytes its events hold.
    pub fn approx_bytes(&self) -> usize {
        self.events.iter().map(CommittedEvent::approx_bytes).sum()
    }
}

/// Is told of every entry a node applies, in log order, right after it became visible to
/// reads. Called on the apply path: it must never wait.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// The entry at `index` was applied; `batch` holds its events if it was a write that
    /// applied records.
    fn applied(&self, index: u64, batch: Option<Arc<CommittedBatch>>);

    /// The engine was replaced (a snapshot installed, a repair): what was announced before
    /// says nothing about what follows; the next entry announced continues from the new state.
    fn reset(&self);
}
