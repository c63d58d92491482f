//! The cluster-wide settings every node applies alike ([`ClusterConfig`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::olap::RetentionConfig;

/// Settings every node of the cluster applies alike: replicated through the log (a
/// `SetClusterSettings` command), stored in the engine, carried by snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    /// How many days the audit trail keeps an entry (0: for ever). Entries older than that,
    /// measured from the newest entry's time, are dropped as new ones are recorded, on every
    /// node at the same log index.
    pub audit_retention_days: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            olap_conversion: true,
            convert_after_minutes: 30,
            retention: RetentionConfig::default(),
            dedup_window_entries: 1_000_000,
            consumer_max_held_entries: 10_000_000,
            audit_retention_days: 0,
        }
    }
}

impl ClusterConfig {
    /// Parses settings from TOML text.
    pub fn from_toml(text: &str) -> Result<ClusterConfig> {
        let s: ClusterConfig = toml::from_str(text).map_err(|e| Error::BadSetting {
            name: "cluster settings",
            reason: one_line(text, &e),
        })?;
        if s.dedup_window_entries == 0 {
            return Err(Error::BadSetting {
                name: "dedup_window_entries",
                reason: "must be above 0".into(),
            });
        }
        Ok(s)
    }

    /// Every setting with its value, as TOML.
    pub fn to_toml(&self) -> String {
        // Plain fields and tables of plain values: nothing here fails to serialize.
        toml::to_string(self).unwrap_or_default()
    }
}

/// A TOML error in one line: what is wrong, and the line of `text` it is on.
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    if line.is_empty() {
        message
    } else {
        format!("{message} (at `{line}`)")
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
        let e = ClusterConfig::from_toml("olap_conversion = true\nbogus = 1").unwrap_err();
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = ClusterConfig::from_toml("audit_retention_days = \"long\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("(at `audit_retention_days = \"long\"`)"),
            "{e}"
        );
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

    #[test]
    fn settings_written_as_toml_read_back_the_same() {
        let s = ClusterConfig::from_toml(
            "audit_retention_days = 400\n[retention]\nkeep_trading_days = 20\n",
        )
        .unwrap();
        let text = s.to_toml();
        assert!(text.contains("audit_retention_days = 400"), "{text}");
        assert_eq!(ClusterConfig::from_toml(&text).unwrap(), s);
        let defaults = ClusterConfig::default();
        assert_eq!(
            ClusterConfig::from_toml(&defaults.to_toml()).unwrap(),
            defaults
        );
    }
}
