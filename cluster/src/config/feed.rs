//! The `[feed]` section of `node.toml`: how much of the live event stream a node keeps in
//! memory for its subscribers, and how far one stream may fall behind before it reads from
//! the journal instead.

use serde::Deserialize;

use super::ConfigError;

/// Subscription settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSection {
    /// Events of recently applied batches kept in memory for live streams.
    pub live_buffer_events: usize,
    /// The same bound in bytes.
    pub live_buffer_bytes: usize,
    /// Events that may wait in the live buffer for one stream before it is moved to reading
    /// from the journal (a subscriber may ask for less).
    pub stream_buffer_events: usize,
    /// The same bound in bytes.
    pub stream_buffer_bytes: u64,
    /// Streams one node serves at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_streams: usize,
}

impl Default for FeedSection {
    fn default() -> Self {
        FeedSection {
            live_buffer_events: 262_144,
            live_buffer_bytes: 128 << 20,
            stream_buffer_events: 65_536,
            stream_buffer_bytes: 32 << 20,
            max_streams: 4096,
        }
    }
}

impl FeedSection {
    /// Checks that every bound is above zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, bool); 5] = [
            ("feed.live_buffer_events", self.live_buffer_events > 0),
            ("feed.live_buffer_bytes", self.live_buffer_bytes > 0),
            ("feed.stream_buffer_events", self.stream_buffer_events > 0),
            ("feed.stream_buffer_bytes", self.stream_buffer_bytes > 0),
            ("feed.max_streams", self.max_streams > 0),
        ];
        for (field, ok) in checks {
            if !ok {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "must be above zero".into(),
                });
            }
        }
        Ok(())
    }
}
