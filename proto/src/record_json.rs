//! A record in JSON is its kind: `{"order_insert": {...}}`, `{"tick": {...}}`, ...

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::v1::{record::Kind, Record};

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.kind {
            Some(k) => k.serialize(s),
            None => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kind = Option::<Kind>::deserialize(d)?;
        match kind {
            Some(k) => Ok(Record { kind: Some(k) }),
            None => Err(D::Error::custom("a record needs a kind")),
        }
    }
}
