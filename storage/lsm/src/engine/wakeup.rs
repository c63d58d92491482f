//! A wake-up signal for a background thread: any thread can raise it, the worker sleeps until
//! it is raised or the engine shuts down.

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    raised: bool,
    shutdown: bool,
}

/// Wakes one background worker.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    state: Mutex<State>,
    cond: Condvar,
}

impl Wakeup {
    /// Asks the worker to look for work.
    pub fn raise(&self) {
        self.state.lock().raised = true;
        self.cond.notify_all();
    }

    /// Tells the worker to finish.
    pub fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.cond.notify_all();
    }

    /// Whether shutdown was requested.
    pub fn is_shutdown(&self) -> bool {
        self.state.lock().shutdown
    }

    /// Sleeps until raised (returns true) or shut down with nothing raised (returns false).
    /// A raise that arrived before shutdown is still delivered, so queued work is drained.
    pub fn wait(&self) -> bool {
        let mut st = self.state.lock();
        loop {
            if st.raised {
                st.raised = false;
                return true;
            }
            if st.shutdown {
                return false;
            }
            self.cond.wait(&mut st);
        }
    }
}
