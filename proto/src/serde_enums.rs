//! Enum fields in JSON: written by name without the type prefix (`"BUY"` for
//! `DIRECTION_BUY`); read from that, from the full name, or from the number.

macro_rules! enum_names {
    ($module:ident, $ty:ty, $prefix:literal) => {
        /// Serde for one enum field.
        pub mod $module {
            use serde::de::Error as _;
            use serde::{Deserialize, Deserializer, Serializer};

            /// Writes the value's short name (its number if unknown).
            pub fn serialize<S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
                match <$ty>::try_from(*value) {
                    Ok(v) => {
                        let name = v.as_str_name();
                        s.serialize_str(name.strip_prefix($prefix).unwrap_or(name))
                    }
                    Err(_) => s.serialize_i32(*value),
                }
            }

            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Either {
                Number(i32),
                Name(String),
            }

            /// Reads a short name, a full name or a number.
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
                match Either::deserialize(d)? {
                    Either::Number(n) => Ok(n),
                    Either::Name(name) => {
                        let upper = name.to_ascii_uppercase();
                        <$ty>::from_str_name(&upper)
                            .or_else(|| <$ty>::from_str_name(&format!("{}{upper}", $prefix)))
                            .map(|v| v as i32)
                            .ok_or_else(|| {
                                D::Error::custom(format!(
                                    "unknown value {name:?} (expected one of the {}* names)",
                                    $prefix
                                ))
                            })
                    }
                }
            }
        }
    };
}

enum_names!(direction, crate::v1::Direction, "DIRECTION_");
enum_names!(offset, crate::v1::Offset, "OFFSET_");
enum_names!(price_type, crate::v1::PriceType, "PRICE_TYPE_");
enum_names!(time_condition, crate::v1::TimeCondition, "TIME_CONDITION_");
enum_names!(
    volume_condition,
    crate::v1::VolumeCondition,
    "VOLUME_CONDITION_"
);
enum_names!(order_status, crate::v1::OrderStatus, "ORDER_STATUS_");
enum_names!(outcome, crate::v1::Outcome, "OUTCOME_");
