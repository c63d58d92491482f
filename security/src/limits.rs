//! How many connections one caller may hold open at a time, so that no identity (a leaked
//! certificate, a client stuck in a reconnect loop) can use up a node's sockets and memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::inspect::CertSummary;

/// Counts open connections per caller and refuses those beyond a limit.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_per_caller: usize,
    open: Mutex<HashMap<String, usize>>,
    refused: AtomicU64,
}

/// One open connection of a caller: gives its place back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: Arc<ConnectionLimiter>,
    caller: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock();
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

impl ConnectionLimiter {
    /// At most `max_per_caller` connections open at once per caller (at least 1).
    pub fn new(max_per_caller: usize) -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter {
            max_per_caller: max_per_caller.max(1),
            open: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// Who a connection counts against: the identity its certificate names (or the
    /// certificate's subject), else, for a caller without one, its IP address.
    pub fn caller_of(certificate: Option<&CertSummary>, remote: Option<SocketAddr>) -> String {
        match certificate {
            Some(c) => c
                .identity
                .as_ref()
                .map_or_else(|| c.subject.clone(), |id| id.uri()),
            None => remote.map_or_else(|| "unknown".into(), |a| format!("ip:{}", a.ip())),
        }
    }

    /// A place for one more connection of `caller`, or `None` when it holds the most already.
    pub fn admit(self: &Arc<Self>, caller: String) -> Option<ConnectionSlot> {
        let mut open = self.open.lock();
        let n = open.entry(caller.clone()).or_insert(0);
        if *n >= self.max_per_caller {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            limiter: self.clone(),
            caller,
        })
    }

    /// The limit.
    pub fn max_per_caller(&self) -> usize {
        self.max_per_caller
    }

    /// Connections refused for being over the limit, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_over_its_limit_is_refused_until_one_of_its_connections_closes() {
        let limiter = ConnectionLimiter::new(2);
        let a1 = limiter.admit("a".into()).unwrap();
        let _a2 = limiter.admit("a".into()).unwrap();
        assert!(limiter.admit("a".into()).is_none());
        let _b = limiter.admit("b".into()).unwrap();
        assert_eq!((limiter.open(), limiter.refused()), (3, 1));
        drop(a1);
        assert!(limiter.admit("a".into()).is_some());
    }
}
