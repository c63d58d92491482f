//! CPU time of single processes, from `/proc/<pid>/stat`: how the machine's time split between
//! the nodes and the benchmark process (writer and subscribers) during a row.

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU seconds used so far by process `pid` (0 if unreadable).
pub fn cpu_secs(pid: u32) -> f64 {
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
pub fn cpu_secs_of(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_secs(*p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu() {
        // Spin until the kernel has counted a tick for this process (at most two seconds).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_secs(std::process::id()) == 0.0 && start.elapsed().as_secs() < 2 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(cpu_secs(std::process::id()) > 0.0);
    }
}
