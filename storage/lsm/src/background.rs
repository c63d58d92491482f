//! The priority of the engine's background threads (flush and compaction).

/// Makes the calling thread `nice` steps nicer than it is (Linux: a thread's niceness is its
/// own). Best effort: a refusal leaves the thread as it was and is only logged, since the
/// engine works the same either way.
pub(crate) fn run_nicer(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority only read their arguments; PRIO_PROCESS with a thread
        // id changes that one thread.
        let rc = unsafe {
            let tid = libc::gettid();
            let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, (now + nice).min(19))
        };
        if rc != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "background thread priority left unchanged"
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_nicer_than_the_thread_that_started_it() {
        // SAFETY: as above; getpriority reads the calling thread's niceness.
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = own();
        let after = std::thread::spawn(move || {
            run_nicer(5);
            own()
        })
        .join()
        .unwrap();
        assert_eq!(after, (before + 5).min(19));
        assert_eq!(own(), before, "only the background thread changed");
    }
}
