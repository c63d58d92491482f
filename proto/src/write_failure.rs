//! A write's failure carried inside a `WriteStream` answer: the same code, message and
//! metadata the unary `Write` would have returned as its status, so a client handles both
//! the same way.

use tonic::metadata::{KeyAndValueRef, MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::v1::WriteFailure;

impl WriteFailure {
    /// The failure that `status` describes (its text metadata kept; binary metadata, which no
    /// write answer carries, is left out).
    pub fn from_status(status: &Status) -> WriteFailure {
        let metadata = status
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                KeyAndValueRef::Ascii(k, v) => {
                    Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                }
                KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        WriteFailure {
            code: status.code() as i32,
            message: status.message().to_string(),
            metadata,
        }
    }

    /// The status this failure describes. An unknown code reads as UNKNOWN; metadata that is
    /// not a valid header is dropped.
    pub fn to_status(&self) -> Status {
        let mut md = MetadataMap::new();
        for (k, v) in &self.metadata {
            let (Ok(key), Ok(value)) = (
                k.parse::<tonic::metadata::AsciiMetadataKey>(),
                MetadataValue::try_from(v.as_str()),
            ) else {
                continue;
            };
            md.insert(key, value);
        }
        Status::with_metadata(Code::from_i32(self.code), self.message.clone(), md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_metadata;

    #[test]
    fn a_status_survives_the_trip_through_a_stream_answer() {
        let mut s = Status::failed_precondition("not the leader; it is node 2");
        s.metadata_mut()
            .insert(api_metadata::LEADER, "127.0.0.1:7102".parse().unwrap());
        let back = WriteFailure::from_status(&s).to_status();
        assert_eq!(back.code(), Code::FailedPrecondition);
        assert_eq!(back.message(), "not the leader; it is node 2");
        assert_eq!(
            back.metadata().get(api_metadata::LEADER).unwrap(),
            "127.0.0.1:7102"
        );
        let odd = WriteFailure {
            code: 99,
            message: "x".into(),
            metadata: [("bad key".to_string(), "v".to_string())].into(),
        };
        let s = odd.to_status();
        assert_eq!(s.code(), Code::Unknown);
        assert!(s.metadata().is_empty());
    }
}
