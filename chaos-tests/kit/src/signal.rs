//! Signals to processes: the single place the workspace calls kill(2).

use std::io;

/// A signal the kit sends to node processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop gracefully.
    Term,
    /// SIGKILL: die at once, as in a crash.
    Kill,
    /// SIGSTOP: freeze (to the others, as if cut off).
    Stop,
    /// SIGCONT: thaw a frozen process.
    Cont,
    /// SIGHUP: a node reads its TLS files again.
    Hup,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Hup => libc::SIGHUP,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

/// Sends `signal` to the process `pid`. Only a single, positive pid is accepted: 0 and
/// negative numbers would reach whole process groups.
pub fn kill(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {pid}")))?;
    // SAFETY: kill(2) only reads its two integer arguments and touches no memory of ours; the
    // pid is a single positive process id (checked above), never a group.
    let rc = unsafe { libc::kill(pid, signal.number()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_child_resumes_and_a_killed_one_ends() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill(child.id(), Signal::Stop).unwrap();
        kill(child.id(), Signal::Cont).unwrap();
        assert!(child.try_wait().unwrap().is_none());
        kill(child.id(), Signal::Kill).unwrap();
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn group_pids_are_refused() {
        assert!(kill(0, Signal::Term).is_err());
        assert!(kill(u32::MAX, Signal::Term).is_err());
    }
}
