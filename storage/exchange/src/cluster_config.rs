//! The cluster-wide settings every node applies alike ([`ClusterConfig`]).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::olap::RetentionConfig;

/// Settings every node of the cluster applies alike: replicated through the log (a
/// `SetClusterSettings` command), stored in the engine, carried by snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Convert closed trading days of ticks and trades to Parquet on a schedule.
    pub olap_conversion: bool,
    /// How long after a trading day ends (the next one's first session opens) it is converted,
    /// in minutes.
    pub convert_after_minutes: u32,
    /// What retention keeps (nothing is dropped when both are unset).
    pub retention: RetentionConfig,
    /// How many log entries a write's request id is remembered for (retries within that many
    /// entries are recognised).
    pub dedup_window_entries: u64,
    /// The most log entries journal retention keeps for durable consumers that have not
    /// acknowledged them; a consumer further behind is expired.
    pub consumer_max_held_entries: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            olap_conversion: true,
            convert_after_minutes: 30,
            retention: RetentionConfig::default(),
            dedup_window_entries: 1_000_000,
            consumer_max_held_entries: 10_000_000,
        }
    }
}

impl ClusterConfig {
    /// Parses settings from TOML text.
    pub fn from_toml(text: &str) -> Result<ClusterConfig> {
        let s: ClusterConfig = toml::from_str(text).map_err(|e| Error::BadSetting {
            name: "cluster settings",
            reason: e.to_string(),
        })?;
        if s.dedup_window_entries == 0 {
            return Err(Error::BadSetting {
                name: "dedup_window_entries",
                reason: "must be above 0".into(),
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_settings_parse_from_toml() {
        let s = ClusterConfig::from_toml(
            "olap_conversion = false\n[retention]\nkeep_trading_days = 20\n",
        )
        .unwrap();
        assert!(!s.olap_conversion);
        assert_eq!(s.retention.keep_trading_days, Some(20));
        assert_eq!(s.dedup_window_entries, 1_000_000);
        assert!(ClusterConfig::from_toml("bogus = 1").is_err());
        assert!(ClusterConfig::from_toml("dedup_window_entries = 0").is_err());
    }

    #[test]
    fn consumers_hold_ten_million_entries_unless_set_otherwise() {
        assert_eq!(
            ClusterConfig::default().consumer_max_held_entries,
            10_000_000
        );
        let s = ClusterConfig::from_toml("consumer_max_held_entries = 500\n").unwrap();
        assert_eq!(s.consumer_max_held_entries, 500);
    }
}
