//! The cluster-wide settings' TOML text, as a replicated `SetClusterSettings` command carries
//! it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_exchange::ClusterConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ClusterConfig::from_toml(text);
    }
});
