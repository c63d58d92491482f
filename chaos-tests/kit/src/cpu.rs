//! CPU use over a stretch of time: machine-wide from `/proc/stat` (how busy the cores were and
//! how much time the hypervisor stole, so that a noisy benchmark row can be spotted), and of
//! single processes from `/proc/<pid>/stat` (what the nodes spent, without the load generator).

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU seconds used so far by process `pid` (0 if unreadable).
pub fn process_cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; the fields after it are space-separated.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the state after the name is field 3.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_SEC
}

/// CPU seconds used so far by each of `pids`, summed.
pub fn processes_cpu_secs(pids: &[u32]) -> f64 {
    pids.iter().map(|p| process_cpu_secs(*p)).sum()
}

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
    fn this_process_has_used_some_cpu() {
        // Spin until the kernel has counted a tick for this process (at most two seconds).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while process_cpu_secs(std::process::id()) == 0.0 && start.elapsed().as_secs() < 2 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(process_cpu_secs(std::process::id()) > 0.0);
        assert_eq!(process_cpu_secs(u32::MAX), 0.0);
    }

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
