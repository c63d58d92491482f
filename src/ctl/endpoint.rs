//! Endpoints as users write them: `host:port`, or `http://host:port` as etcdctl and gRPC
//! tools spell them.

/// A node's client API address as `host:port`.
pub fn parse_endpoint(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with("https://") {
        return Err(format!(
            "{s:?}: give host:port or http://host:port (TLS is turned on by --ca-file, --cert-file and --key-file)"
        ));
    }
    let bare = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    if bare.is_empty() || bare.contains('/') {
        return Err(format!("{s:?} is not host:port"));
    }
    let port_ok = bare
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(format!("{s:?} is not host:port (e.g. 127.0.0.1:7001)"));
    }
    Ok(bare.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_may_carry_an_http_scheme() {
        assert_eq!(parse_endpoint("127.0.0.1:7001").unwrap(), "127.0.0.1:7001");
        assert_eq!(
            parse_endpoint("http://127.0.0.1:7001/").unwrap(),
            "127.0.0.1:7001"
        );
        assert_eq!(parse_endpoint("http://[::1]:7001").unwrap(), "[::1]:7001");
        assert!(parse_endpoint("https://a:1")
            .unwrap_err()
            .contains("--ca-file"));
        assert!(parse_endpoint("localhost").is_err());
        assert!(parse_endpoint("http://a:1/path").is_err());
    }
}
