//! The trading calendar: when each product trades, its contract multiplier, and the days the
//! exchanges are closed.
//!
//! Sessions are local times (China Standard Time by default). A session whose end is earlier
//! than its start runs past midnight; such night sessions belong to the next trading day. The
//! calendar is versioned and loaded from TOML: [`TradingCalendar::builtin`] holds the tables
//! for the CFFEX, SHFE, DCE, CZCE and INE product groups (`storage/calendar/builtin.toml`), and
//! [`TradingCalendar::from_toml`] reads an operator's own.
//!
//! Bars are cut at sessions: a tick belongs to the session around it, counting a short lead
//! before the open (call auctions) and a short lag after the close (closing ticks).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

const NANOS: i64 = 1_000_000_000;
const DAY: i64 = 86_400;
/// Ticks this long before a session opens belong to its first bar (call auctions).
const OPEN_LEAD_SECS: i64 = 5 * 60;
/// Ticks this long after a session closes belong to its last bar.
const CLOSE_LAG_SECS: i64 = 60;

/// What is wrong with a calendar file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The TOML does not parse or has the wrong shape.
    #[error("calendar does not parse: {0}")]
    Parse(String),
    /// A session is not `HH:MM-HH:MM`.
    #[error("group {group}: session {session:?} is not HH:MM-HH:MM")]
    BadSession {
        /// The group's name.
        group: String,
        /// The session text.
        session: String,
    },
    /// A product appears in two groups.
    #[error("product {0} is listed in two groups")]
    DuplicateProduct(String),
    /// A multiplier that is not a positive number.
    #[error("product {0} has a multiplier that is not above zero")]
    BadMultiplier(String),
    /// A holiday that is not a `YYYYMMDD` date.
    #[error("holiday {0} is not a YYYYMMDD date")]
    BadHoliday(u32),
    /// A UTC offset no time zone has.
    #[error("utc_offset_hours {0} is not between -12 and 14")]
    BadUtcOffset(i32),
    /// The calendar file could not be read.
    #[error("calendar file {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
struct CalendarFile {
    version: u32,
    utc_offset_hours: i32,
    #[serde(default)]
    holidays: Vec<u32>,
    groups: Vec<GroupFile>,
}

#[derive(Debug, Deserialize)]
struct GroupFile {
    exchange: String,
    name: String,
    sessions: Vec<String>,
    multipliers: BTreeMap<String, f64>,
}

/// One trading session, in seconds after local midnight of the day it starts. For a night
/// session running past midnight, `end` is above 86,400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Opening time.
    pub start: u32,
    /// Closing time.
    pub end: u32,
}

impl Session {
    /// Whether this is an evening session (it belongs to the next trading day).
    pub fn is_night(&self) -> bool {
        self.start >= 18 * 3600
    }
}

/// A product group: the exchange, its sessions, and the multipliers of its products.
#[derive(Debug, Clone)]
pub struct ProductGroup {
    /// Exchange code.
    pub exchange: String,
    /// The group's name.
    pub name: String,
    /// Its sessions, in the order they happen within a trading day.
    pub sessions: Vec<Session>,
    /// Contract multiplier of each product code.
    pub multipliers: BTreeMap<String, f64>,
}

/// A session occurrence in absolute time: `[start, end)` in epoch nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSpan {
    /// Opening time.
    pub start: i64,
    /// Closing time.
    pub end: i64,
    /// Whether it is a night session.
    pub night: bool,
}

/// Sessions, multipliers and holidays.
#[derive(Debug, Clone)]
pub struct TradingCalendar {
    version: u32,
    offset_nanos: i64,
    groups: Vec<ProductGroup>,
    by_product: HashMap<String, usize>,
    holidays: BTreeSet<u32>,
}

/// The UTC offsets, in hours, that time zones have (UTC-12 to UTC+14).
const UTC_OFFSETS: std::ops::RangeInclusive<i32> = -12..=14;

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    // Lazily: hours from the text may be far too large to multiply.
    (h < 24 && m < 60).then(|| h * 3600 + m * 60)
}

fn parse_session(s: &str) -> Option<Session> {
    let (a, b) = s.split_once('-')?;
    let (start, mut end) = (parse_hhmm(a)?, parse_hhmm(b)?);
    if end <= start {
        end += DAY as u32;
    }
    Some(Session { start, end })
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `YYYYMMDD` to a day number.
pub fn day_number(yyyymmdd: u32) -> i64 {
    let v = i64::from(yyyymmdd);
    days_from_civil(v / 10_000, (v / 100) % 100, v % 100)
}

/// A day number to `YYYYMMDD`.
pub fn yyyymmdd(day: i64) -> u32 {
    let (y, m, d) = civil_from_days(day);
    (y * 10_000 + m * 100 + d) as u32
}

impl TradingCalendar {
    /// The built-in calendar (`storage/calendar/builtin.toml`).
    pub fn builtin() -> TradingCalendar {
        TradingCalendar::from_toml(include_str!("../calendar/builtin.toml"))
            .unwrap_or_else(|e| unreachable!("the built-in calendar is checked by tests: {e}"))
    }

    /// Reads a calendar from TOML text.
    pub fn from_toml(text: &str) -> Result<TradingCalendar, CalendarError> {
        let file: CalendarFile =
            toml::from_str(text).map_err(|e| CalendarError::Parse(e.to_string()))?;
        let mut groups = Vec::new();
        let mut by_product = HashMap::new();
        for g in file.groups {
            let mut sessions = Vec::new();
            for s in &g.sessions {
                sessions.push(parse_session(s).ok_or_else(|| CalendarError::BadSession {
                    group: g.name.clone(),
                    session: s.clone(),
                })?);
            }
            for (product, m) in &g.multipliers {
                if !(m.is_finite() && *m > 0.0) {
                    return Err(CalendarError::BadMultiplier(product.clone()));
                }
                if by_product.insert(product.clone(), groups.len()).is_some() {
                    return Err(CalendarError::DuplicateProduct(product.clone()));
                }
            }
            groups.push(ProductGroup {
                exchange: g.exchange,
                name: g.name,
                sessions,
                multipliers: g.multipliers,
            });
        }
        if !UTC_OFFSETS.contains(&file.utc_offset_hours) {
            return Err(CalendarError::BadUtcOffset(file.utc_offset_hours));
        }
        for &h in &file.holidays {
            if !crate::record::validate::valid_trading_day(h) {
                return Err(CalendarError::BadHoliday(h));
            }
        }
        Ok(TradingCalendar {
            version: file.version,
            offset_nanos: i64::from(file.utc_offset_hours) * 3600 * NANOS,
            groups,
            by_product,
            holidays: file.holidays.into_iter().collect(),
        })
    }

    /// Reads a calendar file.
    pub fn load(path: &std::path::Path) -> Result<TradingCalendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|e| CalendarError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        TradingCalendar::from_toml(&text)
    }

    /// The calendar's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The product code of an instrument: `IF2412` → `IF`, `SHFE.cu2501` → `cu`.
    pub fn product_of(instrument: &str) -> &str {
        let code = instrument.rsplit('.').next().unwrap_or(instrument);
        let end = code
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(code.len());
        &code[..end]
    }

    /// The group an instrument's product belongs to.
    pub fn group_of(&self, instrument: &str) -> Option<&ProductGroup> {
        let i = *self.by_product.get(Self::product_of(instrument))?;
        self.groups.get(i)
    }

    /// The contract multiplier of an instrument.
    pub fn multiplier(&self, instrument: &str) -> Option<f64> {
        self.group_of(instrument)?
            .multipliers
            .get(Self::product_of(instrument))
            .copied()
    }

    /// Whether the exchanges trade on `day` (`YYYYMMDD`): a weekday that is not a holiday.
    pub fn is_trading_day(&self, day: u32) -> bool {
        // 1970-01-01 was a Thursday.
        let weekday = (day_number(day) + 3).rem_euclid(7); // 0 = Monday
        weekday < 5 && !self.holidays.contains(&day)
    }

    /// The first trading day after `day`.
    pub fn next_trading_day(&self, day: u32) -> u32 {
        let mut n = day_number(day) + 1;
        while !self.is_trading_day(yyyymmdd(n)) {
            n += 1;
        }
        yyyymmdd(n)
    }

    /// The last trading day before `day`.
    pub fn previous_trading_day(&self, day: u32) -> u32 {
        let mut n = day_number(day) - 1;
        while !self.is_trading_day(yyyymmdd(n)) {
            n -= 1;
        }
        yyyymmdd(n)
    }

    /// The session occurrence around `ts` (epoch nanoseconds), allowing the opening lead and
    /// closing lag, for the instrument's product group.
    pub fn session_at(&self, instrument: &str, ts: i64) -> Option<SessionSpan> {
        let group = self.group_of(instrument)?;
        let local = ts + self.offset_nanos;
        let day = local.div_euclid(DAY * NANOS);
        for s in &group.sessions {
            // A night session that started yesterday may still be running.
            for start_day in [day, day - 1] {
                let start = (start_day * DAY + i64::from(s.start)) * NANOS;
                let end = (start_day * DAY + i64::from(s.end)) * NANOS;
                if local >= start - OPEN_LEAD_SECS * NANOS && local < end + CLOSE_LAG_SECS * NANOS {
                    return Some(SessionSpan {
                        start: start - self.offset_nanos,
                        end: end - self.offset_nanos,
                        night: s.is_night(),
                    });
                }
            }
        }
        None
    }

    /// The bar of `period_secs` seconds a tick at `ts` falls in: buckets aligned to local
    /// midnight, cut at the session's open and close. `None` outside every session.
    pub fn bar_bounds(&self, instrument: &str, ts: i64, period_secs: i64) -> Option<(i64, i64)> {
        let span = self.session_at(instrument, ts)?;
        let t = ts.clamp(span.start, span.end - 1) + self.offset_nanos;
        let p = period_secs * NANOS;
        let bucket = t.div_euclid(p) * p - self.offset_nanos;
        Some((bucket.max(span.start), (bucket + p).min(span.end)))
    }

    /// The trading day a timestamp belongs to: the session's own date, or for a night session
    /// the next trading day after the date it started on.
    pub fn trading_day_of(&self, instrument: &str, ts: i64) -> Option<u32> {
        let span = self.session_at(instrument, ts)?;
        let start_day = (span.start + self.offset_nanos).div_euclid(DAY * NANOS);
        let date = yyyymmdd(start_day);
        Some(if span.night {
            self.next_trading_day(date)
        } else {
            date
        })
    }

    /// Epoch nanoseconds of a local wall-clock time.
    pub fn local_time(&self, yyyymmdd: u32, hour: u32, minute: u32, second: u32) -> i64 {
        let secs = day_number(yyyymmdd) * DAY + i64::from(hour * 3600 + minute * 60 + second);
        secs * NANOS - self.offset_nanos
    }

    /// When trading day `day` is over for every product group: the latest close of a day
    /// session on that date, plus the lag late ticks are still accepted for (epoch nanoseconds).
    pub fn trading_day_end(&self, day: u32) -> i64 {
        let last_close = self
            .groups
            .iter()
            .flat_map(|g| g.sessions.iter())
            .filter(|s| !s.is_night())
            .map(|s| i64::from(s.end))
            .max()
            .unwrap_or(DAY);
        (day_number(day) * DAY + last_close + CLOSE_LAG_SECS) * NANOS - self.offset_nanos
    }

    /// The trading day in progress at `ts`, or the next one if none is (a night session after
    /// the close belongs to the next trading day, and so do weekends and holidays).
    pub fn trading_day_at(&self, ts: i64) -> u32 {
        let date = yyyymmdd((ts + self.offset_nanos).div_euclid(DAY * NANOS));
        if self.is_trading_day(date) && ts < self.trading_day_end(date) {
            date
        } else {
            self.next_trading_day(date)
        }
    }

    /// The product groups.
    pub fn groups(&self) -> &[ProductGroup] {
        &self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trading_days_end_after_the_last_day_session_and_nights_count_forward() {
        let cal = TradingCalendar::builtin();
        // Monday 2024-12-02: the last day session closes at 15:15 (CFFEX bond futures).
        let end = cal.trading_day_end(20241202);
        assert_eq!(end, cal.local_time(20241202, 15, 16, 0));
        assert_eq!(
            cal.trading_day_at(cal.local_time(20241202, 10, 0, 0)),
            20241202
        );
        assert_eq!(
            cal.trading_day_at(cal.local_time(20241202, 21, 30, 0)),
            20241203
        );
        // Friday night and the weekend count towards Monday.
        assert_eq!(
            cal.trading_day_at(cal.local_time(20241206, 22, 0, 0)),
            20241209
        );
        assert_eq!(
            cal.trading_day_at(cal.local_time(20241208, 12, 0, 0)),
            20241209
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for day in [-1000, 0, 1, 19_000, 20_059, 60_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(yyyymmdd(day_number(20240229)), 20240229);
        assert_eq!(day_number(19700101), 0);
    }

    #[test]
    fn the_builtin_calendar_loads_and_knows_the_exchanges() {
        let c = TradingCalendar::builtin();
        assert_eq!(c.version(), 1);
        for (inst, exchange, mult) in [
            ("IF2412", "CFFEX", 300.0),
            ("T2503", "CFFEX", 10000.0),
            ("SHFE.cu2501", "SHFE", 5.0),
            ("au2502", "SHFE", 1000.0),
            ("m2505", "DCE", 10.0),
            ("TA501", "CZCE", 5.0),
            ("sc2501", "INE", 1000.0),
        ] {
            assert_eq!(
                c.group_of(inst).map(|g| g.exchange.as_str()),
                Some(exchange),
                "{inst}"
            );
            assert_eq!(c.multiplier(inst), Some(mult), "{inst}");
        }
        assert!(c.group_of("ZZ999").is_none());
    }

    #[test]
    fn trading_days_skip_weekends_and_holidays() {
        let c = TradingCalendar::builtin();
        assert!(c.is_trading_day(20241202)); // Monday
        assert!(!c.is_trading_day(20241130)); // Saturday
        assert!(!c.is_trading_day(20241001)); // National Day
        assert_eq!(c.next_trading_day(20241129), 20241202); // Friday -> Monday
        assert_eq!(c.next_trading_day(20240930), 20241008);
    }

    #[test]
    fn night_sessions_belong_to_the_next_trading_day() {
        let c = TradingCalendar::builtin();
        // Friday 2024-11-29 21:30 on copper: Monday's trading day.
        let t = c.local_time(20241129, 21, 30, 0);
        assert_eq!(c.trading_day_of("cu2501", t), Some(20241202));
        // 00:30 Saturday is still Friday's night session (copper runs to 01:00).
        let t = c.local_time(20241130, 0, 30, 0);
        assert_eq!(c.trading_day_of("cu2501", t), Some(20241202));
        // Rebar's night ends at 23:00.
        assert_eq!(
            c.session_at("rb2501", c.local_time(20241130, 0, 30, 0)),
            None
        );
        // Index futures have no night session.
        assert_eq!(
            c.session_at("IF2412", c.local_time(20241202, 21, 30, 0)),
            None
        );
    }

    #[test]
    fn bars_are_cut_at_session_edges() {
        let c = TradingCalendar::builtin();
        let at = |h, m, s| c.local_time(20241202, h, m, s);
        // 1h bars in the 09:30-11:30 session: 09:30-10:00, 10:00-11:00, 11:00-11:30.
        assert_eq!(
            c.bar_bounds("IF2412", at(9, 45, 0), 3600),
            Some((at(9, 30, 0), at(10, 0, 0)))
        );
        assert_eq!(
            c.bar_bounds("IF2412", at(11, 15, 0), 3600),
            Some((at(11, 0, 0), at(11, 30, 0)))
        );
        // An auction tick before the open and a closing tick after the close join the edge bars.
        assert_eq!(
            c.bar_bounds("IF2412", at(9, 26, 0), 60),
            Some((at(9, 30, 0), at(9, 31, 0)))
        );
        assert_eq!(
            c.bar_bounds("IF2412", at(15, 0, 0), 60),
            Some((at(14, 59, 0), at(15, 0, 0)))
        );
        // The lunch break is in no session.
        assert_eq!(c.bar_bounds("IF2412", at(12, 15, 0), 60), None);
    }

    #[test]
    fn bad_calendars_are_refused_with_a_reason() {
        let bad_session = "version = 1\nutc_offset_hours = 8\n[[groups]]\nexchange = \"X\"\nname = \"g\"\nsessions = [\"9-10\"]\nmultipliers = { a = 1 }\n";
        assert!(matches!(
            TradingCalendar::from_toml(bad_session),
            Err(CalendarError::BadSession { .. })
        ));
        let dup = "version = 1\nutc_offset_hours = 8\n[[groups]]\nexchange = \"X\"\nname = \"g\"\nsessions = [\"09:00-10:00\"]\nmultipliers = { a = 1 }\n[[groups]]\nexchange = \"Y\"\nname = \"h\"\nsessions = [\"09:00-10:00\"]\nmultipliers = { a = 2 }\n";
        assert_eq!(
            TradingCalendar::from_toml(dup).unwrap_err(),
            CalendarError::DuplicateProduct("a".into())
        );
        assert!(matches!(
            TradingCalendar::from_toml("version = "),
            Err(CalendarError::Parse(_))
        ));
    }

    #[test]
    fn a_session_hour_too_large_to_count_in_seconds_is_refused_not_an_overflow() {
        let huge_hour = "version = 1\nutc_offset_hours = 8\n[[groups]]\nexchange = \"X\"\nname = \"g\"\nsessions = [\"09:30-1120250505:30\"]\nmultipliers = { a = 1 }\n";
        assert!(matches!(
            TradingCalendar::from_toml(huge_hour),
            Err(CalendarError::BadSession { .. })
        ));
    }

    #[test]
    fn an_offset_no_time_zone_has_is_refused_not_an_overflow() {
        for hours in [15, -13, 2_600_000, i32::MIN] {
            let text = format!("version = 1\nutc_offset_hours = {hours}\ngroups = []\n");
            assert_eq!(
                TradingCalendar::from_toml(&text).unwrap_err(),
                CalendarError::BadUtcOffset(hours)
            );
        }
        for hours in [-12, 0, 14] {
            let text = format!("version = 1\nutc_offset_hours = {hours}\ngroups = []\n");
            assert!(TradingCalendar::from_toml(&text).is_ok(), "{hours}");
        }
    }
}
