//! The key layout: how exchange records map onto the engine's sorted key space.
//!
//! Every key starts with one byte naming its keyspace. Ids (which validation keeps free of
//! control characters, so of `\0`) are followed by a `\0` terminator, which keeps one id from
//! being a prefix of another's range (`u1` never captures `u10`). Times are epoch nanoseconds as
//! big-endian `u64` with the sign bit flipped, so byte order is time order. Log indexes are
//! big-endian `u64`, ordinals big-endian `u32`.
//!
//! | space | key | example | holds |
//! |---|---|---|---|
//! | `o` | `o user \0 order_id` | `o u1001\0 o-0001` | the order's current state |
//! | `h` | `h user \0 order_id \0 index ordinal` | `h u1001\0 o-0001\0 <42><0>` | (empty) one entry per journal event of the order |
//! | `x` | `x user \0 order_id \0 index ordinal` | `x u1001\0 o-0009\0 <57><3>` | an update parked until its order arrives |
//! | `y` | `y user \0 order_id` | `y u1001\0 o-0009` | (empty) marks an order with parked updates |
//! | `t` | `t instrument \0 time user \0 trade_id` | `t IF2412\0 <t> u1001\0 t-0001` | a trade, by instrument and time |
//! | `u` | `u user \0 time trade_id` | `u u1001\0 <t> t-0001` | the same trade, by user and time |
//! | `a` | `a user \0 currency` | `a u1001\0 CNY` | the latest account state |
//! | `p` | `p user \0 exchange \0 instrument` | `p u1001\0 CFFEX\0 IF2412` | the latest position |
//! | `k` | `k instrument \0 time sequence` | `k IF2412\0 <t><17>` | a tick (equal times told apart by sequence) |
//! | `b` | `b instrument \0 !time` | `b IF2412\0 <!t>` | a book snapshot, newest first |
//! | `e` | `e index ordinal` | `e <42><0>` | the event journal: every applied record |
//! | `c` | `c index` | `c <42>` | when the leader proposed the write batch at that index (`i64` big-endian nanoseconds) |
//! | `i` | `i kind instrument` | `i k IF2412` | instruments seen, per kind (`k` ticks, `t` trades) |
//! | `s` | `s name ...` | `s olap\0 ...` | system state (catalogs, applied log id, ...) |
//!
//! So one user's orders, one user's trades, one user's positions, one instrument's ticks or
//! trades over a time range, and the latest book of an instrument (the first key of its range)
//! are each one contiguous range.

/// Bytes of the keyspace name every key starts with. Nodes partition the engine's tables by
/// it, so that keyspaces written in key order (the journal, commit times) sit in tables of
/// their own that compaction moves down whole.
pub const SPACE_BYTES: usize = 1;

/// Keyspace of orders.
pub const ORDER: u8 = b'o';
/// Keyspace of order history pointers into the journal.
pub const HISTORY: u8 = b'h';
/// Keyspace of parked order updates.
pub const PARKED: u8 = b'x';
/// Keyspace of markers of orders with parked updates.
pub const PARKED_MARKER: u8 = b'y';
/// Keyspace of trades by instrument.
pub const TRADE_BY_INSTRUMENT: u8 = b't';
/// Keyspace of trades by user.
pub const TRADE_BY_USER: u8 = b'u';
/// Keyspace of accounts.
pub const ACCOUNT: u8 = b'a';
/// Keyspace of positions.
pub const POSITION: u8 = b'p';
/// Keyspace of ticks.
pub const TICK: u8 = b'k';
/// Keyspace of order-book snapshots.
pub const BOOK: u8 = b'b';
/// Keyspace of the event journal.
pub const JOURNAL: u8 = b'e';
/// Keyspace of the commit times of write batches.
pub const COMMIT_TIME: u8 = b'c';
/// Keyspace of the instrument catalog.
pub const INSTRUMENT: u8 = b'i';
/// Keyspace of system state.
pub const SYSTEM: u8 = b's';

/// Order-preserving encoding of a signed time.
pub fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// Decodes [`time_bytes`].
pub fn time_from_bytes(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// Builds keys piece by piece.
#[derive(Debug, Clone, Default)]
pub struct KeyBuf(Vec<u8>);

impl KeyBuf {
    /// A key in `space`.
    pub fn new(space: u8) -> Self {
        let mut v = Vec::with_capacity(48);
        v.push(space);
        KeyBuf(v)
    }

    /// Appends an id and its terminator.
    pub fn id(mut self, id: &str) -> Self {
        self.0.extend_from_slice(id.as_bytes());
        self.0.push(0);
        self
    }

    /// Appends an id without a terminator (last element of a key).
    pub fn last_id(mut self, id: &str) -> Self {
        self.0.extend_from_slice(id.as_bytes());
        self
    }

    /// Appends a time.
    pub fn time(mut self, t: i64) -> Self {
        self.0.extend_from_slice(&time_bytes(t));
        self
    }

    /// Appends a time so that later times sort first.
    pub fn time_desc(mut self, t: i64) -> Self {
        let b = time_bytes(t).map(|x| !x);
        self.0.extend_from_slice(&b);
        self
    }

    /// Appends a `u64`.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u32`.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends one byte.
    pub fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }

    /// The key.
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// An order's key.
pub fn order(user: &str, order_id: &str) -> Vec<u8> {
    KeyBuf::new(ORDER).id(user).last_id(order_id).build()
}

/// The range of one user's orders.
pub fn user_orders(user: &str) -> Vec<u8> {
    KeyBuf::new(ORDER).id(user).build()
}

/// A history pointer: the journal event at (`index`, `ordinal`) concerns this order.
pub fn history(user: &str, order_id: &str, index: u64, ordinal: u32) -> Vec<u8> {
    KeyBuf::new(HISTORY)
        .id(user)
        .id(order_id)
        .u64(index)
        .u32(ordinal)
        .build()
}

/// The range of one order's history pointers.
pub fn order_history(user: &str, order_id: &str) -> Vec<u8> {
    KeyBuf::new(HISTORY).id(user).id(order_id).build()
}

/// A parked update of an order not yet inserted.
pub fn parked(user: &str, order_id: &str, index: u64, ordinal: u32) -> Vec<u8> {
    KeyBuf::new(PARKED)
        .id(user)
        .id(order_id)
        .u64(index)
        .u32(ordinal)
        .build()
}

/// The range of one order's parked updates.
pub fn parked_for(user: &str, order_id: &str) -> Vec<u8> {
    KeyBuf::new(PARKED).id(user).id(order_id).build()
}

/// The marker of an order with parked updates: a point lookup (answered by bloom filters when
/// absent) instead of a range scan on every insert.
pub fn parked_marker(user: &str, order_id: &str) -> Vec<u8> {
    KeyBuf::new(PARKED_MARKER)
        .id(user)
        .last_id(order_id)
        .build()
}

/// A trade in the by-instrument index.
pub fn trade_by_instrument(instrument: &str, time: i64, user: &str, trade_id: &str) -> Vec<u8> {
    KeyBuf::new(TRADE_BY_INSTRUMENT)
        .id(instrument)
        .time(time)
        .id(user)
        .last_id(trade_id)
        .build()
}

/// The start of an instrument's trades at `time` (inclusive).
pub fn instrument_trades_at(instrument: &str, time: i64) -> Vec<u8> {
    KeyBuf::new(TRADE_BY_INSTRUMENT)
        .id(instrument)
        .time(time)
        .build()
}

/// The range of an instrument's trades.
pub fn instrument_trades(instrument: &str) -> Vec<u8> {
    KeyBuf::new(TRADE_BY_INSTRUMENT).id(instrument).build()
}

/// A trade in the by-user index.
pub fn trade_by_user(user: &str, time: i64, trade_id: &str) -> Vec<u8> {
    KeyBuf::new(TRADE_BY_USER)
        .id(user)
        .time(time)
        .last_id(trade_id)
        .build()
}

/// The start of a user's trades at `time` (inclusive).
pub fn user_trades_at(user: &str, time: i64) -> Vec<u8> {
    KeyBuf::new(TRADE_BY_USER).id(user).time(time).build()
}

/// The range of a user's trades.
pub fn user_trades(user: &str) -> Vec<u8> {
    KeyBuf::new(TRADE_BY_USER).id(user).build()
}

/// An account's key.
pub fn account(user: &str, currency: &str) -> Vec<u8> {
    KeyBuf::new(ACCOUNT).id(user).last_id(currency).build()
}

/// The range of a user's accounts.
pub fn user_accounts(user: &str) -> Vec<u8> {
    KeyBuf::new(ACCOUNT).id(user).build()
}

/// A position's key.
pub fn position(user: &str, exchange: &str, instrument: &str) -> Vec<u8> {
    KeyBuf::new(POSITION)
        .id(user)
        .id(exchange)
        .last_id(instrument)
        .build()
}

/// The range of a user's positions.
pub fn user_positions(user: &str) -> Vec<u8> {
    KeyBuf::new(POSITION).id(user).build()
}

/// A tick's key.
pub fn tick(instrument: &str, time: i64, sequence: u64) -> Vec<u8> {
    KeyBuf::new(TICK)
        .id(instrument)
        .time(time)
        .u64(sequence)
        .build()
}

/// The start of an instrument's ticks at `time` (inclusive).
pub fn instrument_ticks_at(instrument: &str, time: i64) -> Vec<u8> {
    KeyBuf::new(TICK).id(instrument).time(time).build()
}

/// The range of an instrument's ticks.
pub fn instrument_ticks(instrument: &str) -> Vec<u8> {
    KeyBuf::new(TICK).id(instrument).build()
}

/// A book snapshot's key (newest first within the instrument).
pub fn book(instrument: &str, time: i64) -> Vec<u8> {
    KeyBuf::new(BOOK).id(instrument).time_desc(time).build()
}

/// The range of an instrument's books; its first key is the latest book.
pub fn instrument_books(instrument: &str) -> Vec<u8> {
    KeyBuf::new(BOOK).id(instrument).build()
}

/// A journal entry's key.
pub fn journal(index: u64, ordinal: u32) -> Vec<u8> {
    KeyBuf::new(JOURNAL).u64(index).u32(ordinal).build()
}

/// The journal from `index` on (inclusive).
pub fn journal_from(index: u64) -> Vec<u8> {
    KeyBuf::new(JOURNAL).u64(index).build()
}

/// The key of the commit time of the write batch at `index`.
pub fn commit_time(index: u64) -> Vec<u8> {
    KeyBuf::new(COMMIT_TIME).u64(index).build()
}

/// Where the journal's retained history begins: the cut-off of the last journal retention
/// (`u64` big-endian). Events of lower log indexes are gone.
pub fn journal_floor() -> Vec<u8> {
    KeyBuf::new(SYSTEM).last_id("journal-floor").build()
}

/// The log index a commit-time key is for.
pub fn parse_commit_time(key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != COMMIT_TIME {
        return None;
    }
    Some(u64::from_be_bytes(key[1..9].try_into().ok()?))
}

/// Splits a journal key into (index, ordinal).
pub fn parse_journal(key: &[u8]) -> Option<(u64, u32)> {
    if key.len() != 13 || key[0] != JOURNAL {
        return None;
    }
    let index = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let ordinal = u32::from_be_bytes(key[9..13].try_into().ok()?);
    Some((index, ordinal))
}

/// The (index, ordinal) a history or parked key ends with.
pub fn parse_event_suffix(key: &[u8]) -> Option<(u64, u32)> {
    let n = key.len().checked_sub(12)?;
    let index = u64::from_be_bytes(key[n..n + 8].try_into().ok()?);
    let ordinal = u32::from_be_bytes(key[n + 8..].try_into().ok()?);
    Some((index, ordinal))
}

/// Which record stream an instrument catalog entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Ticks.
    Ticks,
    /// Trades.
    Trades,
}

impl Stream {
    /// The byte identifying the stream in keys.
    pub fn byte(self) -> u8 {
        match self {
            Stream::Ticks => b'k',
            Stream::Trades => b't',
        }
    }

    /// The stream's name in file paths.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Ticks => "ticks",
            Stream::Trades => "trades",
        }
    }
}

/// An instrument catalog key.
pub fn instrument(stream: Stream, instrument: &str) -> Vec<u8> {
    KeyBuf::new(INSTRUMENT)
        .byte(stream.byte())
        .last_id(instrument)
        .build()
}

/// The range of the instrument catalog of a stream.
pub fn instruments(stream: Stream) -> Vec<u8> {
    KeyBuf::new(INSTRUMENT).byte(stream.byte()).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_as_numbers() {
        let ts = [i64::MIN, -5, 0, 1, 1_733_103_000_000_000_000, i64::MAX];
        for w in ts.windows(2) {
            assert!(time_bytes(w[0]) < time_bytes(w[1]));
        }
        for t in ts {
            assert_eq!(time_from_bytes(time_bytes(t)), t);
        }
    }

    #[test]
    fn an_id_never_captures_a_longer_id() {
        let u1 = user_orders("u1");
        assert!(order("u1", "a").starts_with(&u1));
        assert!(!order("u10", "a").starts_with(&u1));
        assert!(!tick("IF2412X", 5, 0).starts_with(&instrument_ticks("IF2412")));
    }

    #[test]
    fn ranges_are_contiguous_and_time_ordered() {
        let a = tick("IF2412", 100, 2);
        let b = tick("IF2412", 100, 3);
        let c = tick("IF2412", 101, 0);
        assert!(
            a < b && b < c,
            "equal times are ordered by sequence, never merged"
        );
        assert!(instrument_ticks_at("IF2412", 100) <= a);
        assert!(c < instrument_ticks_at("IF2412", 102));
        assert!(
            book("IF2412", 200) < book("IF2412", 100),
            "newest book first"
        );
        assert!(trade_by_user("u1", 5, "z") < trade_by_user("u1", 6, "a"));
        assert_eq!(parse_journal(&journal(42, 7)), Some((42, 7)));
        assert_eq!(parse_event_suffix(&history("u", "o", 42, 7)), Some((42, 7)));
        assert!(journal(1, 65_535) < journal(2, 0));
    }
}
