//! The enumerations records carry. Each has an `Unspecified` value 0 (as in the public API,
//! where an unset enum field reads as 0), which validation rejects, and converts from the
//! API's integer codes with an error naming the field for values it does not know.

use rkyv::{Archive, Deserialize, Serialize};

/// An enumeration code the record layer does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value} for {field}")]
pub struct UnknownEnum {
    /// The field.
    pub field: &'static str,
    /// The code received.
    pub value: i32,
}

macro_rules! record_enum {
    ($(#[$doc:meta])* $name:ident / $archived:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Archive, Serialize, Deserialize)]
        #[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
        #[repr(u8)]
        pub enum $name {
            /// Not set; never valid in a stored record.
            #[default]
            Unspecified = 0,
            $($(#[$vdoc])* $variant = $code),+
        }

        impl $name {
            /// Converts an API code; `field` names the field for the error.
            pub fn from_code(value: i32, field: &'static str) -> Result<Self, UnknownEnum> {
                match value {
                    0 => Ok($name::Unspecified),
                    $($code => Ok($name::$variant),)+
                    _ => Err(UnknownEnum { field, value }),
                }
            }

            /// The API code.
            pub fn code(self) -> i32 {
                self as i32
            }

            /// Parses the upper-case name ([`Self::as_str`]).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The upper-case name used in Parquet files and text output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $name::Unspecified => "UNSPECIFIED",
                    $($name::$variant => $text,)+
                }
            }
        }

        impl $archived {
            /// The native value.
            pub fn native(&self) -> $name {
                match self {
                    Self::Unspecified => $name::Unspecified,
                    $(Self::$variant => $name::$variant,)+
                }
            }
        }
    };
}

record_enum!(
    /// Buy or sell.
    Direction / ArchivedDirection {
        /// Buy.
        Buy = 1 => "BUY",
        /// Sell.
        Sell = 2 => "SELL",
    }
);

record_enum!(
    /// Whether an order opens or closes a position.
    Offset / ArchivedOffset {
        /// Open a position.
        Open = 1 => "OPEN",
        /// Close a position.
        Close = 2 => "CLOSE",
        /// Close a position opened today (SHFE/INE distinguish it).
        CloseToday = 3 => "CLOSETODAY",
    }
);

record_enum!(
    /// How an order is priced.
    PriceType / ArchivedPriceType {
        /// At a limit price.
        Limit = 1 => "LIMIT",
        /// At any price (market order).
        Any = 2 => "ANY",
        /// At the best price.
        Best = 3 => "BEST",
        /// Against the best five levels.
        FiveLevel = 4 => "FIVELEVEL",
    }
);

record_enum!(
    /// How long an order stays active.
    TimeCondition / ArchivedTimeCondition {
        /// Immediate or cancel.
        Ioc = 1 => "IOC",
        /// Good for this session.
        Gfs = 2 => "GFS",
        /// Good for the day.
        Gfd = 3 => "GFD",
        /// Good till a date.
        Gtd = 4 => "GTD",
        /// Good till cancelled.
        Gtc = 5 => "GTC",
        /// Good for the auction.
        Gfa = 6 => "GFA",
    }
);

record_enum!(
    /// How much of an order must fill.
    VolumeCondition / ArchivedVolumeCondition {
        /// Any volume.
        Any = 1 => "ANY",
        /// At least a minimum volume.
        Min = 2 => "MIN",
        /// All or nothing.
        All = 3 => "ALL",
    }
);

record_enum!(
    /// Whether an order can still trade.
    OrderStatus / ArchivedOrderStatus {
        /// Working at the exchange.
        Alive = 1 => "ALIVE",
        /// Filled, cancelled or rejected.
        Finished = 2 => "FINISHED",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_name_the_field() {
        assert_eq!(Direction::from_code(2, "direction"), Ok(Direction::Sell));
        assert_eq!(Offset::from_code(3, "offset").map(Offset::code), Ok(3));
        assert_eq!(
            OrderStatus::from_code(9, "status"),
            Err(UnknownEnum {
                field: "status",
                value: 9
            })
        );
        assert_eq!(PriceType::Limit.as_str(), "LIMIT");
        assert_eq!(TimeCondition::default(), TimeCondition::Unspecified);
    }
}
