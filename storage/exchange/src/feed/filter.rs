//! Which committed events a subscriber wants: record kinds, instruments, users, exchange.

use super::OrderPlace;
use crate::record::Record;

/// The most entries one list of a filter may hold.
pub const MAX_FILTER_ENTRIES: usize = 4096;
/// The longest id a filter may name, in bytes.
pub const MAX_FILTER_ID_BYTES: usize = 128;

/// The kinds of event a filter selects: order inserts and updates are both `Orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Order inserts and order updates.
    Orders,
    /// Trades.
    Trades,
    /// Account updates.
    Accounts,
    /// Position updates.
    Positions,
    /// Market ticks.
    Ticks,
    /// Order-book snapshots.
    Books,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        EventKind::Orders,
        EventKind::Trades,
        EventKind::Accounts,
        EventKind::Positions,
        EventKind::Ticks,
        EventKind::Books,
    ];

    /// The kind of `record`.
    pub fn of(record: &Record) -> EventKind {
        match record {
            Record::OrderInsert(_) | Record::OrderUpdate(_) => EventKind::Orders,
            Record::TradeExecuted(_) => EventKind::Trades,
            Record::AccountUpdate(_) => EventKind::Accounts,
            Record::PositionUpdate(_) => EventKind::Positions,
            Record::Tick(_) => EventKind::Ticks,
            Record::OrderBookSnapshot(_) => EventKind::Books,
        }
    }

    /// The kind's name, as the CLI spells it (`orders`, `ticks`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Orders => "orders",
            EventKind::Trades => "trades",
            EventKind::Accounts => "accounts",
            EventKind::Positions => "positions",
            EventKind::Ticks => "ticks",
            EventKind::Books => "books",
        }
    }

    /// The kind named `name` (as [`EventKind::name`] spells it).
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Why a filter was refused; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field filter.{field}: {reason}")]
pub struct InvalidFilter {
    /// The filter's field (`kinds`, `instruments`, `instrument_prefixes`, `users`, `exchange`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Which events a stream carries. Each part that is set must match (AND); within a list, any
/// entry matches (OR); an empty list or unset exchange does not filter. A record without the
/// field a part filters on does not match that part (an account update has no instrument),
/// except that an instrument entry written `EXCHANGE.id` matches a record that carries no
/// exchange (ticks, books) on its id alone.
///
/// An order update carries no instrument or exchange of its own: it is matched on those of its
/// order (its insert), handed in as an [`OrderPlace`] by [`EventFilter::matches_with`]. An
/// update with no known order (one parked because it came before its insert) does not match
/// instrument, prefix or exchange parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    kinds: Vec<EventKind>,
    instruments: Vec<String>,
    instrument_prefixes: Vec<String>,
    users: Vec<String>,
    exchange: Option<String>,
}

impl EventFilter {
    /// A filter that lets every event through.
    pub fn everything() -> EventFilter {
        EventFilter::default()
    }

    /// A filter that lets every event of these kinds through.
    pub fn of_kinds(kinds: &[EventKind]) -> EventFilter {
        EventFilter {
            kinds: kinds.to_vec(),
            ..EventFilter::default()
        }
    }

    /// A checked filter. Ids must be 1 to [`MAX_FILTER_ID_BYTES`] bytes without control
    /// characters; a list holds at most [`MAX_FILTER_ENTRIES`].
    pub fn new(
        kinds: Vec<EventKind>,
        instruments: Vec<String>,
        instrument_prefixes: Vec<String>,
        users: Vec<String>,
        exchange: Option<String>,
    ) -> Result<EventFilter, InvalidFilter> {
        check_list("kinds", kinds.len())?;
        check_ids("instruments", &instruments)?;
        check_ids("instrument_prefixes", &instrument_prefixes)?;
        check_ids("users", &users)?;
        if let Some(e) = &exchange {
            check_id("exchange", e)?;
        }
        let mut kinds = kinds;
        kinds.sort();
        kinds.dedup();
        Ok(EventFilter {
            kinds,
            instruments,
            instrument_prefixes,
            users,
            exchange,
        })
    }

    /// The kinds selected (empty: all).
    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }

    /// Whether `kind` passes the kind part.
    pub fn wants_kind(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// Whether matching an order update needs its order's place: the filter selects orders
    /// and has an instrument, prefix or exchange part. When it does not, no place need be
    /// looked up.
    pub fn needs_order_place(&self) -> bool {
        self.wants_kind(EventKind::Orders)
            && (self.exchange.is_some()
                || !self.instruments.is_empty()
                || !self.instrument_prefixes.is_empty())
    }

    /// Whether some event on `instrument` (of any exchange) may pass the instrument and
    /// prefix parts: lets a reader skip whole partitions of other instruments.
    pub fn may_match_instrument(&self, instrument: &str) -> bool {
        (self.instruments.is_empty() && self.instrument_prefixes.is_empty())
            || self
                .instruments
                .iter()
                .any(|w| names_instrument(w, None, instrument, |a, b| a == b))
            || self
                .instrument_prefixes
                .iter()
                .any(|w| names_instrument(w, None, instrument, |a, b| a.starts_with(b)))
    }

    /// Whether `record` passes every part, with no order place known: an order update never
    /// passes an instrument, prefix or exchange part this way (see
    /// [`EventFilter::matches_with`]).
    pub fn matches(&self, record: &Record) -> bool {
        self.matches_with(record, None)
    }

    /// Whether `record` passes every part; `order` is where the order of an order update
    /// trades (`None`: unknown). Records other than order updates ignore `order`.
    pub fn matches_with(&self, record: &Record, order: Option<&OrderPlace>) -> bool {
        if !self.wants_kind(EventKind::of(record)) {
            return false;
        }
        let (mut exchange, mut instrument, user) = fields(record);
        if let (Record::OrderUpdate(_), Some(place)) = (record, order) {
            exchange = Some(&place.exchange_id);
            instrument = Some(&place.instrument_id);
        }
        if let Some(want) = &self.exchange {
            if exchange != Some(want.as_str()) {
                return false;
            }
        }
        if !self.users.is_empty() {
            match user {
                Some(u) if self.users.iter().any(|w| w == u) => {}
                _ => return false,
            }
        }
        if !self.instruments.is_empty() || !self.instrument_prefixes.is_empty() {
            let Some(instrument) = instrument else {
                return false;
            };
            let exact = self
                .instruments
                .iter()
                .any(|w| names_instrument(w, exchange, instrument, |a, b| a == b));
            let prefixed = self
                .instrument_prefixes
                .iter()
                .any(|w| names_instrument(w, exchange, instrument, |a, b| a.starts_with(b)));
            if !exact && !prefixed {
                return false;
            }
        }
        true
    }
}

/// Whether the filter entry `want` (`id` or `EXCHANGE.id`) names the instrument, `test`
/// comparing the record's id with the entry's.
fn names_instrument(
    want: &str,
    exchange: Option<&str>,
    instrument: &str,
    test: impl Fn(&str, &str) -> bool,
) -> bool {
    if test(instrument, want) {
        return true;
    }
    match want.split_once('.') {
        Some((ex, id)) => match exchange {
            Some(have) => have == ex && test(instrument, id),
            None => test(instrument, id),
        },
        None => false,
    }
}

/// A record's exchange, instrument and user, where it has them.
fn fields(record: &Record) -> (Option<&str>, Option<&str>, Option<&str>) {
    fn s(v: &str) -> Option<&str> {
        Some(v)
    }
    match record {
        Record::OrderInsert(o) => (s(&o.exchange_id), s(&o.instrument_id), s(&o.user_id)),
        Record::OrderUpdate(u) => (None, None, s(&u.user_id)),
        Record::TradeExecuted(t) => (s(&t.exchange_id), s(&t.instrument_id), s(&t.user_id)),
        Record::AccountUpdate(a) => (None, None, s(&a.user_id)),
        Record::PositionUpdate(p) => (s(&p.exchange_id), s(&p.instrument_id), s(&p.user_id)),
        Record::Tick(t) => (None, s(&t.instrument_id), None),
        Record::OrderBookSnapshot(b) => (None, s(&b.instrument_id), None),
    }
}

fn check_list(field: &'static str, len: usize) -> Result<(), InvalidFilter> {
    if len > MAX_FILTER_ENTRIES {
        return Err(InvalidFilter {
            field,
            reason: format!("{len} entries exceed the limit of {MAX_FILTER_ENTRIES}"),
        });
    }
    Ok(())
}

fn check_ids(field: &'static str, ids: &[String]) -> Result<(), InvalidFilter> {
    check_list(field, ids.len())?;
    ids.iter().try_for_each(|id| check_id(field, id))
}

fn check_id(field: &'static str, id: &str) -> Result<(), InvalidFilter> {
    let reason = if id.is_empty() {
        "an entry is empty".to_string()
    } else if id.len() > MAX_FILTER_ID_BYTES {
        format!(
            "an entry of {} bytes exceeds {MAX_FILTER_ID_BYTES}",
            id.len()
        )
    } else if id.chars().any(char::is_control) {
        format!("{id:?} holds a control character")
    } else {
        return Ok(());
    };
    Err(InvalidFilter { field, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::samples;

    fn filter(
        kinds: &[EventKind],
        instruments: &[&str],
        prefixes: &[&str],
        users: &[&str],
        exchange: Option<&str>,
    ) -> EventFilter {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        EventFilter::new(
            kinds.to_vec(),
            v(instruments),
            v(prefixes),
            v(users),
            exchange.map(str::to_string),
        )
        .unwrap()
    }

    fn kinds_matched(f: &EventFilter) -> Vec<EventKind> {
        samples::records()
            .iter()
            .filter(|r| f.matches(r))
            .map(EventKind::of)
            .collect()
    }

    #[test]
    fn an_empty_filter_matches_every_record() {
        let records = samples::records();
        assert!(records.iter().all(|r| EventFilter::everything().matches(r)));
    }

    #[test]
    fn kinds_select_records_and_orders_cover_inserts_and_updates() {
        let f = filter(&[EventKind::Orders, EventKind::Ticks], &[], &[], &[], None);
        let got = kinds_matched(&f);
        assert!(got.contains(&EventKind::Orders) && got.contains(&EventKind::Ticks));
        assert!(got
            .iter()
            .all(|k| matches!(k, EventKind::Orders | EventKind::Ticks)));
        let orders = samples::records()
            .iter()
            .filter(|r| f.matches(r) && EventKind::of(r) == EventKind::Orders)
            .count();
        assert_eq!(orders, 2, "the insert and the update");
    }

    #[test]
    fn instruments_match_exactly_by_prefix_and_with_an_exchange_part() {
        let exact = filter(&[], &["IF2412"], &[], &[], None);
        assert!(!kinds_matched(&exact).is_empty());
        assert!(!kinds_matched(&exact).contains(&EventKind::Accounts));
        let none = filter(&[], &["IF24"], &[], &[], None);
        assert!(kinds_matched(&none).is_empty());
        let prefix = filter(&[], &[], &["IF24"], &[], None);
        assert_eq!(kinds_matched(&prefix), kinds_matched(&exact));
        let with_exchange = filter(&[], &[], &["CFFEX.IF"], &[], None);
        assert_eq!(kinds_matched(&with_exchange), kinds_matched(&exact));
        let wrong_exchange = filter(&[], &[], &["SHFE.IF"], &[], None);
        let got = kinds_matched(&wrong_exchange);
        // Ticks and books carry no exchange: they match on the id alone.
        assert!(got
            .iter()
            .all(|k| matches!(k, EventKind::Ticks | EventKind::Books)));
        assert!(!got.is_empty());
    }

    #[test]
    fn users_and_exchange_combine_with_and() {
        let user = filter(&[], &[], &[], &["u1001"], None);
        let got = kinds_matched(&user);
        assert!(got.contains(&EventKind::Accounts) && !got.contains(&EventKind::Ticks));
        let other = filter(&[], &[], &[], &["nobody"], None);
        assert!(kinds_matched(&other).is_empty());
        let both = filter(&[EventKind::Trades], &[], &[], &["u1001"], Some("CFFEX"));
        assert_eq!(kinds_matched(&both), vec![EventKind::Trades]);
        let wrong = filter(&[EventKind::Trades], &[], &[], &["u1001"], Some("SHFE"));
        assert!(kinds_matched(&wrong).is_empty());
    }

    #[test]
    fn an_order_update_matches_instrument_and_exchange_parts_by_its_orders_place() {
        let records = samples::records();
        let update = records
            .iter()
            .find(|r| matches!(r, Record::OrderUpdate(_)))
            .unwrap();
        let Some(Record::OrderInsert(insert)) = records.first() else {
            panic!("the samples start with an order insert");
        };
        let place = OrderPlace::of(insert);
        let other = OrderPlace {
            exchange_id: "SHFE".into(),
            instrument_id: "rb2501".into(),
        };
        let wanting = [
            filter(&[EventKind::Orders], &["IF2412"], &[], &[], None),
            filter(&[], &["CFFEX.IF2412"], &[], &[], None),
            filter(&[], &[], &["CFFEX.IF24"], &[], None),
            filter(&[EventKind::Orders], &[], &[], &["u1001"], Some("CFFEX")),
        ];
        for f in &wanting {
            assert!(f.needs_order_place(), "{f:?}");
            assert!(f.matches_with(update, Some(&place)), "{f:?}");
            assert!(!f.matches_with(update, Some(&other)), "{f:?}");
            // Its order unknown (the update was parked): instrument and exchange parts fail.
            assert!(!f.matches_with(update, None), "{f:?}");
            assert!(!f.matches(update), "{f:?}");
        }
        // A place changes nothing for filters without those parts, nor for other records.
        let by_user = filter(&[], &[], &[], &["u1001"], None);
        assert!(!by_user.needs_order_place());
        assert!(by_user.matches_with(update, None));
        let ticks_only = filter(&[EventKind::Ticks], &["IF2412"], &[], &[], None);
        assert!(!ticks_only.needs_order_place());
        let account = records
            .iter()
            .find(|r| matches!(r, Record::AccountUpdate(_)))
            .unwrap();
        assert!(!wanting[0].matches_with(account, Some(&place)));
    }

    #[test]
    fn malformed_entries_are_refused_naming_the_field() {
        let e = EventFilter::new(vec![], vec!["".into()], vec![], vec![], None).unwrap_err();
        assert_eq!(e.field, "instruments");
        assert!(e.to_string().contains("filter.instruments"), "{e}");
        let e = EventFilter::new(vec![], vec![], vec![], vec!["a\nb".into()], None).unwrap_err();
        assert_eq!(e.field, "users");
        let e =
            EventFilter::new(vec![], vec![], vec![], vec![], Some("x".repeat(200))).unwrap_err();
        assert_eq!(e.field, "exchange");
        let many = vec!["p".to_string(); MAX_FILTER_ENTRIES + 1];
        let e = EventFilter::new(vec![], vec![], many, vec![], None).unwrap_err();
        assert_eq!(e.field, "instrument_prefixes");
    }

    #[test]
    fn kind_names_read_back() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(k));
        }
        assert_eq!(EventKind::from_name("bananas"), None);
    }
}
