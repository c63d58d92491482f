//! The disk quota: a background task measures the data directory; above the alarm fraction
//! of the quota the node raises an alarm (metric and status), and at the quota admission
//! refuses writes with RESOURCE_EXHAUSTED before the disk fills. Reads and deletes (retention) go on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qastore_raft::DiskUse;

/// How often the data directory is measured.
const MEASURE_EVERY: Duration = Duration::from_millis(500);

/// The quota and the last measurement.
#[derive(Debug)]
pub struct DiskQuota {
    dir: PathBuf,
    quota_bytes: u64,
    alarm_ratio: f64,
    used: AtomicU64,
    alarm: AtomicBool,
}

impl DiskQuota {
    /// A quota of `quota_bytes` (0: none) on `dir`.
    pub fn new(dir: PathBuf, quota_bytes: u64, alarm_ratio: f64) -> Arc<Self> {
        let q = Arc::new(DiskQuota {
            dir,
            quota_bytes,
            alarm_ratio,
            used: AtomicU64::new(0),
            alarm: AtomicBool::new(false),
        });
        q.measure();
        q
    }

    /// Measures the directory now (blocking: walks it).
    pub fn measure(&self) {
        let used = dir_bytes(&self.dir);
        self.used.store(used, Ordering::Relaxed);
        let alarm =
            self.quota_bytes > 0 && used as f64 >= self.quota_bytes as f64 * self.alarm_ratio;
        let was = self.alarm.swap(alarm, Ordering::Relaxed);
        if alarm && !was {
            tracing::warn!(
                used,
                quota = self.quota_bytes,
                "disk alarm: the data directory is near its quota"
            );
        }
    }

    /// Measures the directory periodically until `stop`.
    pub fn spawn(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let q = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(MEASURE_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let q2 = q.clone();
                let _ = tokio::task::spawn_blocking(move || q2.measure()).await;
            }
        });
    }

    /// Bytes the data directory held at the last measurement.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The quota (0: none).
    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Whether the alarm is raised.
    pub fn alarm(&self) -> bool {
        self.alarm.load(Ordering::Relaxed)
    }

    /// The data directory's use against the quota at the last measurement, for admission.
    pub fn usage(&self) -> DiskUse {
        DiskUse {
            used: self.used_bytes(),
            quota: self.quota_bytes,
        }
    }
}

/// Bytes of the regular files under `dir`, each file once however many hard links it has
/// (checkpoints hard-link the engine's tables).
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if seen.insert((m.dev(), m.ino())) => total += m.len(),
                _ => {}
            }
        }
    }
    total
}
