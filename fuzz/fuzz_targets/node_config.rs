//! A node's configuration file (`node.toml`), parsed and checked, then turned into the
//! settings the node starts with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_cluster::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = NodeConfig::from_toml(text) {
        let api = config.api_listen;
        let _ = config.raft_node_config(api, None);
        let _ = config.backup_dir();
    }
});
