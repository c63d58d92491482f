//! Times on the command line: read as RFC 3339, a date or epoch nanoseconds; printed as
//! RFC 3339 in UTC.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A point in time given on the command line, in epoch nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeArg(pub i64);

/// Reads `2024-12-02T09:30:00+08:00` (RFC 3339, any offset), `2024-12-02` (midnight UTC) or
/// a whole number of epoch nanoseconds.
pub fn parse_time(s: &str) -> Result<TimeArg, String> {
    let s = s.trim();
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(TimeArg(ns));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return nanos(t.with_timezone(&Utc), s);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        if let Some(t) = midnight {
            return nanos(t, s);
        }
    }
    Err(format!(
        "{s:?} is not a time: use RFC 3339 (2024-12-02T09:30:00+08:00), a date (2024-12-02, \
         midnight UTC) or epoch nanoseconds"
    ))
}

fn nanos(t: DateTime<Utc>, s: &str) -> Result<TimeArg, String> {
    t.timestamp_nanos_opt()
        .map(TimeArg)
        .ok_or_else(|| format!("{s:?} lies outside the years 1677 to 2262"))
}

/// Epoch nanoseconds as RFC 3339 in UTC, with as many fraction digits as needed.
pub fn format_time(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_dates_or_nanoseconds() {
        assert_eq!(
            parse_time("2024-12-02").unwrap(),
            TimeArg(1_733_097_600_000_000_000)
        );
        assert_eq!(
            parse_time("2024-12-02T09:30:00+08:00").unwrap(),
            TimeArg(1_733_103_000_000_000_000)
        );
        assert_eq!(
            parse_time("2024-12-02T01:30:00.5Z").unwrap(),
            TimeArg(1_733_103_000_500_000_000)
        );
        assert_eq!(
            parse_time("1733103000000000000").unwrap().0,
            1_733_103_000_000_000_000
        );
        let e = parse_time("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        assert!(parse_time("3000-01-01").unwrap_err().contains("outside"));
    }

    #[test]
    fn times_print_as_rfc3339_in_utc() {
        assert_eq!(
            format_time(1_733_103_000_000_000_000),
            "2024-12-02T01:30:00Z"
        );
        assert_eq!(
            format_time(1_733_103_000_500_000_000),
            "2024-12-02T01:30:00.500Z"
        );
        assert_eq!(
            format_time(1_733_103_000_000_000_001),
            "2024-12-02T01:30:00.000000001Z"
        );
    }
}
