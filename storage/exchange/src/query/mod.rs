//! Reading exchange data back: orders with their history, accounts, positions, trades and ticks
//! over time ranges (paged), the latest book, the event journal, and OHLCV bars ([`bars`]).
//!
//! Ranges of ticks and trades come from the LSM and, for trading days already converted, from
//! Parquet files ([`crate::olap`]); the answers are the same either way.

pub(crate) mod bar_input;
pub mod bars;
pub mod page;
pub(crate) mod range;
mod stream;

use crate::apply::JournalEntry;
use crate::error::{Error, Result};
use crate::keys;
use crate::record::{
    decode, AccountUpdate, OrderBookSnapshot, OrderState, OrderStatus, PositionUpdate, Tick,
    TradeExecuted,
};
use qastore_lsm::Engine;

pub use bar_input::{BarInput, TickOrder};
pub use bars::{Bar, BarSource, Period};
pub use page::{Page, PageRequest};
pub use range::TimeRange;
pub use stream::{tick_stream, trade_stream};

/// An order and the journal events that concern it (its insert, updates and fills).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    /// The order as it stands.
    pub state: OrderState,
    /// Its events, oldest first (events dropped by journal retention are missing).
    pub history: Vec<JournalEntry>,
}

pub(crate) fn decode_at<T>(key: &[u8], value: &[u8]) -> Result<T>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    decode::<T>(value)
        .map_err(|e| Error::bad_value(String::from_utf8_lossy(key).into_owned(), e.to_string()))
}

/// Queries over an engine holding exchange records.
#[derive(Debug, Clone, Copy)]
pub struct Queries<'a> {
    engine: &'a Engine,
}

impl<'a> Queries<'a> {
    /// Queries against `engine`, as of its last applied batch.
    pub fn new(engine: &'a Engine) -> Self {
        Queries { engine }
    }

    /// The engine queried.
    pub fn engine(&self) -> &'a Engine {
        self.engine
    }

    fn get<T>(&self, key: Vec<u8>) -> Result<Option<T>>
    where
        T: rkyv::Archive,
        T::Archived: for<'b> rkyv::bytecheck::CheckBytes<
                rkyv::api::high::HighValidator<'b, rkyv::rancor::Error>,
            > + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
    {
        match self.engine.get(&key)? {
            Some(v) => decode_at(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn all_under<T>(&self, prefix: &[u8]) -> Result<Vec<T>>
    where
        T: rkyv::Archive,
        T::Archived: for<'b> rkyv::bytecheck::CheckBytes<
                rkyv::api::high::HighValidator<'b, rkyv::rancor::Error>,
            > + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
    {
        self.engine
            .scan_prefix(prefix)
            .map(|row| {
                let (k, v) = row?;
                decode_at(&k, &v)
            })
            .collect()
    }

    /// One order as it stands.
    pub fn order(&self, user: &str, order_id: &str) -> Result<Option<OrderState>> {
        self.get(keys::order(user, order_id))
    }

    /// The journal events of one order, oldest first.
    pub fn order_history(&self, user: &str, order_id: &str) -> Result<Vec<JournalEntry>> {
        let mut out = Vec::new();
        for row in self
            .engine
            .scan_prefix(&keys::order_history(user, order_id))
        {
            let (k, _) = row?;
            let Some((index, ordinal)) = keys::parse_event_suffix(&k) else {
                continue;
            };
            if let Some(entry) = self.journal_entry(index, ordinal)? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// A user's orders in order-id order, optionally only the alive ones, each with its
    /// history when `with_history` is set.
    pub fn orders(
        &self,
        user: &str,
        only_alive: bool,
        with_history: bool,
    ) -> Result<Vec<OrderView>> {
        let mut out = Vec::new();
        for state in self.all_under::<OrderState>(&keys::user_orders(user))? {
            if only_alive && state.order.status != OrderStatus::Alive {
                continue;
            }
            let history = if with_history {
                self.order_history(user, &state.order.order_id)?
            } else {
                Vec::new()
            };
            out.push(OrderView { state, history });
        }
        Ok(out)
    }

    /// A user's account in one currency.
    pub fn account(&self, user: &str, currency: &str) -> Result<Option<AccountUpdate>> {
        self.get(keys::account(user, currency))
    }

    /// All of a user's accounts.
    pub fn accounts(&self, user: &str) -> Result<Vec<AccountUpdate>> {
        self.all_under(&keys::user_accounts(user))
    }

    /// A user's positions.
    pub fn positions(&self, user: &str) -> Result<Vec<PositionUpdate>> {
        self.all_under(&keys::user_positions(user))
    }

    /// The latest order-book snapshot of an instrument.
    pub fn latest_book(&self, instrument: &str) -> Result<Option<OrderBookSnapshot>> {
        match self
            .engine
            .scan_prefix(&keys::instrument_books(instrument))
            .next()
        {
            Some(row) => {
                let (k, v) = row?;
                decode_at(&k, &v).map(Some)
            }
            None => Ok(None),
        }
    }

    /// One journal event.
    pub fn journal_entry(&self, index: u64, ordinal: u32) -> Result<Option<JournalEntry>> {
        self.get(keys::journal(index, ordinal))
    }

    /// Journal events from `index` on, up to `limit` of them, in log order.
    pub fn journal(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>> {
        let lower = keys::journal_from(index);
        let upper = vec![keys::JOURNAL + 1];
        range::scan_keys(self.engine, lower, upper, None)
            .take(limit)
            .map(|row| {
                let (k, v) = row?;
                decode_at(&k, &v)
            })
            .collect()
    }

    /// An instrument's ticks in `range`, a page at a time.
    pub fn ticks(
        &self,
        instrument: &str,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Tick>> {
        range.check()?;
        let limit = page.limit()?;
        let resume = page.resume_after(&keys::instrument_ticks(instrument))?;
        let stream = tick_stream(self.engine, instrument, range, resume)?;
        collect_page(stream, limit)
    }

    /// An instrument's trades (every side's record) in `range`, a page at a time.
    pub fn trades(
        &self,
        instrument: &str,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<TradeExecuted>> {
        range.check()?;
        let limit = page.limit()?;
        let resume = page.resume_after(&keys::instrument_trades(instrument))?;
        let stream = trade_stream(self.engine, instrument, range, resume)?;
        collect_page(stream, limit)
    }

    /// A user's trades in `range`, a page at a time.
    pub fn user_trades(
        &self,
        user: &str,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<TradeExecuted>> {
        range.check()?;
        let limit = page.limit()?;
        let resume = page.resume_after(&keys::user_trades(user))?;
        let rows = range::scan_keys(
            self.engine,
            keys::user_trades_at(user, range.from),
            keys::user_trades_at(user, range.to),
            resume,
        )
        .map(|row| {
            let (k, v) = row?;
            Ok((k.to_vec(), decode_at::<TradeExecuted>(&k, &v)?))
        });
        collect_page(rows, limit)
    }
}

/// Takes up to `limit` items, and a token if more follow.
fn collect_page<T>(
    mut rows: impl Iterator<Item = Result<(Vec<u8>, T)>>,
    limit: usize,
) -> Result<Page<T>> {
    let mut items = Vec::new();
    let mut last_key = None;
    for row in rows.by_ref() {
        let (key, item) = row?;
        items.push(item);
        last_key = Some(key);
        if items.len() == limit {
            break;
        }
    }
    let more = items.len() == limit && rows.next().transpose()?.is_some();
    Ok(Page {
        items,
        next: match (more, last_key) {
            (true, Some(k)) => Some(page::token_after(&k)),
            _ => None,
        },
    })
}
