//! Whether this node's engine can be trusted: damage found in it (a failed checksum, a stopped
//! engine) is recorded here, so that health checks, metrics and status report it and reads
//! refuse the damaged state until a repair replaces the engine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Damage seen in the engine, and what was done about it.
#[derive(Debug, Default)]
pub struct EngineDamage {
    current: Mutex<Option<(String, Instant)>>,
    detected: AtomicU64,
    repaired: AtomicU64,
    stopping: AtomicBool,
}

impl EngineDamage {
    /// Records that the engine cannot be used, and why. Logged once per episode.
    pub fn report(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut current = self.current.lock();
        if current.is_none() {
            self.detected.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                %reason,
                "this node's engine is damaged: it cannot apply entries, its reads are refused, \
                 and it will replace its engine with a snapshot from a peer"
            );
            *current = Some((reason, Instant::now()));
        }
    }

    /// Records that the engine was replaced by a sound one.
    pub fn repaired(&self) {
        if let Some((reason, since)) = self.current.lock().take() {
            self.repaired.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %reason,
                after = ?since.elapsed(),
                "the damaged engine was replaced by a snapshot from a peer"
            );
        }
    }

    /// Why the engine cannot be used, if it cannot.
    pub fn reason(&self) -> Option<String> {
        self.current.lock().as_ref().map(|(r, _)| r.clone())
    }

    /// How long the current damage has been known.
    pub fn since(&self) -> Option<Duration> {
        self.current.lock().as_ref().map(|(_, t)| t.elapsed())
    }

    /// Times damage was found.
    pub fn detected_total(&self) -> u64 {
        self.detected.load(Ordering::Relaxed)
    }

    /// Times a damaged engine was replaced.
    pub fn repairs_total(&self) -> u64 {
        self.repaired.load(Ordering::Relaxed)
    }

    /// Tells repairs waiting for a peer to give up: the node is stopping.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the node is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// Whether a storage error means the engine's data or files cannot be trusted (as opposed to
/// bad input, or a component that is merely closing).
pub fn is_damage(e: &qastore_lsm::Error) -> bool {
    use qastore_lsm::Error as E;
    matches!(
        e,
        E::Corruption { .. } | E::BadValue { .. } | E::EngineFailed(_) | E::Io { .. }
    )
}

/// Whether a storage error says stored bytes failed a check (not merely that an operation
/// failed, as on a full disk).
pub fn is_corruption(e: &qastore_lsm::Error) -> bool {
    use qastore_lsm::Error as E;
    match e {
        E::Corruption { .. } | E::BadValue { .. } => true,
        E::EngineFailed(inner) => is_corruption(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_reported_once_and_cleared_by_a_repair() {
        let d = EngineDamage::default();
        assert_eq!(d.reason(), None);
        d.report("block checksum mismatch");
        d.report("another failure of the same episode");
        assert_eq!(d.reason().as_deref(), Some("block checksum mismatch"));
        assert_eq!(d.detected_total(), 1);
        d.repaired();
        assert_eq!(d.reason(), None);
        assert_eq!(d.repairs_total(), 1);
    }
}
