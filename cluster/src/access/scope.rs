//! What data a caller may read: everything, or only some users' and some instruments'. A
//! scope comes from the caller's entry in the access table or from its token (certificates
//! carry none). A call passes when it stays inside every part of the scope that is set:
//!
//! * users: a read of one user's orders, accounts, positions or trades must name a user of
//!   the scope; market data (ticks, books, bars) holds no user's data and passes; every
//!   user's trades of an instrument do not. A subscription must filter on users of the scope,
//!   or ask for ticks and books alone.
//! * instruments (ids, or prefixes ending in `*`; written with or without the exchange, and
//!   matched on the id): a read of one instrument must name one of the scope; a user's orders,
//!   accounts or positions span instruments and do not pass. A subscription must filter on
//!   instruments or prefixes inside the scope.

use qastore_proto::v1 as pb;
use tonic::Status;

/// The users and instruments a caller may read (each empty: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// User ids.
    pub users: Vec<String>,
    /// Instrument ids or `prefix*` patterns.
    pub instruments: Vec<String>,
}

/// The id part of `EXCHANGE.id` (or the whole text without a dot).
fn id_part(s: &str) -> &str {
    s.split_once('.').map_or(s, |(_, id)| id)
}

fn denied(method: &str, who: &str, why: String) -> Status {
    Status::permission_denied(format!("{method}: {who} {why}"))
}

impl Scope {
    /// Whether the scope limits nothing.
    pub fn is_unlimited(&self) -> bool {
        self.users.is_empty() && self.instruments.is_empty()
    }

    fn names_instrument(&self, instrument: &str) -> bool {
        let wanted = id_part(instrument);
        self.instruments
            .iter()
            .any(|entry| match id_part(entry).strip_suffix('*') {
                Some(prefix) => wanted.starts_with(prefix),
                None => wanted == id_part(entry),
            })
    }

    fn covers_prefix(&self, prefix: &str) -> bool {
        let wanted = id_part(prefix);
        self.instruments.iter().any(|entry| {
            id_part(entry)
                .strip_suffix('*')
                .is_some_and(|p| wanted.starts_with(p))
        })
    }

    fn users_text(&self) -> String {
        self.users.join(", ")
    }

    fn instruments_text(&self) -> String {
        self.instruments.join(", ")
    }

    /// A read of `user`'s own data (orders, accounts, positions, trades).
    pub fn check_user_read(&self, method: &str, who: &str, user: &str) -> Result<(), Status> {
        if !self.instruments.is_empty() {
            return Err(denied(
                method,
                who,
                format!(
                    "may read instruments {} only, and a user's data spans instruments",
                    self.instruments_text()
                ),
            ));
        }
        if !self.users.is_empty() && !self.users.iter().any(|u| u == user) {
            return Err(denied(
                method,
                who,
                format!("may read users {} only, not {user}", self.users_text()),
            ));
        }
        Ok(())
    }

    /// A read of one instrument's data; `every_user`: it holds users' data (every user's
    /// trades), otherwise it is market data (ticks, books, bars).
    pub fn check_instrument_read(
        &self,
        method: &str,
        who: &str,
        instrument: &str,
        every_user: bool,
    ) -> Result<(), Status> {
        if every_user && !self.users.is_empty() {
            return Err(denied(
                method,
                who,
                format!(
                    "may read users {} only, and this holds every user's trades",
                    self.users_text()
                ),
            ));
        }
        if !self.instruments.is_empty() && !self.names_instrument(instrument) {
            return Err(denied(
                method,
                who,
                format!(
                    "may read instruments {} only, not {instrument}",
                    self.instruments_text()
                ),
            ));
        }
        Ok(())
    }

    /// A subscription's filter.
    pub fn check_filter(
        &self,
        method: &str,
        who: &str,
        filter: Option<&pb::EventFilter>,
    ) -> Result<(), Status> {
        if self.is_unlimited() {
            return Ok(());
        }
        let empty = pb::EventFilter::default();
        let f = filter.unwrap_or(&empty);
        if !self.users.is_empty() {
            let market_only = !f.kinds.is_empty()
                && f.kinds.iter().all(|k| {
                    matches!(
                        pb::RecordKind::try_from(*k),
                        Ok(pb::RecordKind::Ticks | pb::RecordKind::Books)
                    )
                });
            let own_users =
                !f.users.is_empty() && f.users.iter().all(|u| self.users.iter().any(|s| s == u));
            if !market_only && !own_users {
                return Err(denied(
                    method,
                    who,
                    format!(
                        "may read users {} only: filter on them (users), or on ticks and books \
                         alone (kinds)",
                        self.users_text()
                    ),
                ));
            }
        }
        if !self.instruments.is_empty() {
            let named = !f.instruments.is_empty() || !f.instrument_prefixes.is_empty();
            let inside = f.instruments.iter().all(|i| self.names_instrument(i))
                && f.instrument_prefixes.iter().all(|p| self.covers_prefix(p));
            if !named || !inside {
                return Err(denied(
                    method,
                    who,
                    format!(
                        "may read instruments {} only: filter on them (instruments, \
                         instrument_prefixes)",
                        self.instruments_text()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(users: &[&str], instruments: &[&str]) -> Scope {
        Scope {
            users: users.iter().map(|s| s.to_string()).collect(),
            instruments: instruments.iter().map(|s| s.to_string()).collect(),
        }
    }

    const M: &str = "Store/ListOrders";

    #[test]
    fn a_user_scope_reads_its_users_and_market_data_only() {
        let s = scope(&["u1", "u2"], &[]);
        s.check_user_read(M, "c", "u1").unwrap();
        let e = s.check_user_read(M, "client c", "u3").unwrap_err();
        assert_eq!(
            e.message(),
            "Store/ListOrders: client c may read users u1, u2 only, not u3"
        );
        s.check_instrument_read(M, "c", "rb2501", false).unwrap();
        assert!(s.check_instrument_read(M, "c", "rb2501", true).is_err());
    }

    #[test]
    fn an_instrument_scope_reads_its_instruments_and_no_user_data() {
        let s = scope(&[], &["SHFE.rb*", "IF2412"]);
        for ok in ["rb2501", "SHFE.rb2505", "IF2412", "CFFEX.IF2412"] {
            s.check_instrument_read(M, "c", ok, true).unwrap();
        }
        for bad in ["cu2501", "IF2501", "r"] {
            assert!(
                s.check_instrument_read(M, "c", bad, false).is_err(),
                "{bad}"
            );
        }
        assert!(s.check_user_read(M, "c", "u1").is_err());
    }

    #[test]
    fn a_scoped_subscription_must_filter_inside_its_scope() {
        let filter =
            |kinds: &[pb::RecordKind], instruments: &[&str], prefixes: &[&str], users: &[&str]| {
                pb::EventFilter {
                    kinds: kinds.iter().map(|k| *k as i32).collect(),
                    instruments: instruments.iter().map(|s| s.to_string()).collect(),
                    instrument_prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
                    users: users.iter().map(|s| s.to_string()).collect(),
                    exchange: String::new(),
                }
            };
        let users = scope(&["u1"], &[]);
        users
            .check_filter(M, "c", Some(&filter(&[], &[], &[], &["u1"])))
            .unwrap();
        users
            .check_filter(
                M,
                "c",
                Some(&filter(&[pb::RecordKind::Ticks], &[], &[], &[])),
            )
            .unwrap();
        assert!(users.check_filter(M, "c", None).is_err());
        assert!(users
            .check_filter(M, "c", Some(&filter(&[], &[], &[], &["u1", "u2"])))
            .is_err());
        assert!(users
            .check_filter(
                M,
                "c",
                Some(&filter(&[pb::RecordKind::Trades], &[], &[], &[]))
            )
            .is_err());

        let instruments = scope(&[], &["SHFE.rb*"]);
        instruments
            .check_filter(M, "c", Some(&filter(&[], &["rb2501"], &["SHFE.rb25"], &[])))
            .unwrap();
        assert!(instruments.check_filter(M, "c", None).is_err());
        assert!(instruments
            .check_filter(M, "c", Some(&filter(&[], &[], &["r"], &[])))
            .is_err());
        assert!(instruments
            .check_filter(M, "c", Some(&filter(&[], &["cu2501"], &[], &[])))
            .is_err());
        Scope::default().check_filter(M, "c", None).unwrap();
    }
}
