//! A record's position: the log index of its batch and its ordinal in that batch.

use std::fmt;
use std::str::FromStr;

/// Where a committed record sits in the log: the same on every replica. Printed and parsed as
/// `index:ordinal` (`1234:7`). Positions order as the log does.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Position {
    /// The log index of the record's batch.
    pub index: u64,
    /// The record's place in its batch, from 0.
    pub ordinal: u32,
}

impl Position {
    /// The position of record `ordinal` of the batch at `index`.
    pub const fn new(index: u64, ordinal: u32) -> Position {
        Position { index, ordinal }
    }

    /// The position after every record of the batch at `index` (and before the next batch).
    pub const fn end_of(index: u64) -> Position {
        Position {
            index,
            ordinal: u32::MAX,
        }
    }

    /// The first position after this one: the next record of the batch, or the first of the
    /// next batch when this is the end of its batch.
    pub fn successor(self) -> Position {
        match self.ordinal.checked_add(1) {
            Some(ordinal) if ordinal != u32::MAX => Position::new(self.index, ordinal),
            _ => Position::new(self.index.saturating_add(1), 0),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.index, self.ordinal)
    }
}

/// Why a text is not a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a position: expected INDEX:ORDINAL, such as 1234:7")]
pub struct ParsePositionError {
    /// The text given.
    pub text: String,
}

impl FromStr for Position {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Position, ParsePositionError> {
        let bad = || ParsePositionError { text: s.into() };
        let (index, ordinal) = s.split_once(':').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(ordinal) {
            return Err(bad());
        }
        Ok(Position {
            index: index.parse().map_err(|_| bad())?,
            ordinal: ordinal.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_prints_and_parses_back() {
        let p = Position::new(1234, 7);
        assert_eq!(p.to_string(), "1234:7");
        assert_eq!("1234:7".parse::<Position>(), Ok(p));
        assert_eq!(
            Position::end_of(9).to_string().parse::<Position>(),
            Ok(Position::end_of(9))
        );
    }

    #[test]
    fn malformed_positions_are_refused() {
        for bad in [
            "",
            "12",
            "12:",
            ":3",
            "a:1",
            "1:b",
            "-1:0",
            "1:2:3",
            " 1:2",
            "1:99999999999",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn positions_order_as_the_log_and_step_over_batch_ends() {
        assert!(Position::new(3, 9) < Position::new(4, 0));
        assert!(Position::new(4, 0) < Position::end_of(4));
        assert_eq!(Position::new(4, 1).successor(), Position::new(4, 2));
        assert_eq!(Position::end_of(4).successor(), Position::new(5, 0));
        assert_eq!(
            Position::new(4, u32::MAX - 1).successor(),
            Position::new(5, 0)
        );
    }
}
