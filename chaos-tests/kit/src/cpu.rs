//! Machine-wide CPU use over a stretch of time, from `/proc/stat`: how busy the cores were and
//! how much time the hypervisor stole, so that a noisy benchmark row can be spotted.

/// Cumulative CPU time counters at one moment (in clock ticks), all zero where `/proc/stat`
/// cannot be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    total: u64,
    idle: u64,
    steal: u64,
}

/// CPU use between two samples, as fractions of all cores' time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUsage {
    /// Busy (neither idle nor waiting for I/O), 0 to 1.
    pub busy: f64,
    /// Stolen by the hypervisor, 0 to 1.
    pub steal: f64,
}

impl CpuSample {
    /// The counters now.
    pub fn now() -> CpuSample {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| parse(&text))
            .unwrap_or_default()
    }

    /// The use between `earlier` and this sample.
    pub fn since(&self, earlier: &CpuSample) -> CpuUsage {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return CpuUsage::default();
        }
        let idle = self.idle.saturating_sub(earlier.idle);
        let steal = self.steal.saturating_sub(earlier.steal);
        CpuUsage {
            busy: 1.0 - idle as f64 / total as f64,
            steal: steal as f64 / total as f64,
        }
    }
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq steal (guest time is
/// already counted in user).
fn parse(text: &str) -> Option<CpuSample> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    if v.len() < 8 {
        return None;
    }
    Some(CpuSample {
        total: v.iter().sum(),
        idle: v[3] + v[4],
        steal: v[7],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_steal_come_from_the_cpu_line() {
        let a = parse("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = parse("cpu  200 0 200 800 100 0 0 100 0 0\n").unwrap();
        let u = b.since(&a);
        assert!((u.busy - 0.75).abs() < 1e-9, "{u:?}");
        assert!((u.steal - 0.25).abs() < 1e-9, "{u:?}");
        assert_eq!(CpuSample::default().since(&a), CpuUsage::default());
    }
}
