//! How long a call may take: the client's gRPC deadline (`grpc-timeout`) when it sent one,
//! otherwise the node's default.

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// The time left for a call, from its `grpc-timeout` header or `default`.
pub fn call_timeout(md: &MetadataMap, default: Duration) -> Duration {
    md.get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(default, |d| d.min(default.max(Duration::from_secs(600))))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_bad_ones_fall_back() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("12Q"), None);
        let mut md = MetadataMap::new();
        assert_eq!(
            call_timeout(&md, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        md.insert("grpc-timeout", "100m".parse().unwrap());
        assert_eq!(
            call_timeout(&md, Duration::from_secs(5)),
            Duration::from_millis(100)
        );
    }
}
