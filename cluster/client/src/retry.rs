//! Backoff between retries: starts short, doubles to a cap, honours the node's hint.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(50);
const CAP: Duration = Duration::from_secs(1);

/// The waits between retries of one call.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// The next wait: the node's hint if it gave one, else the doubling wait.
    pub fn next(&mut self, hint: Option<Duration>) -> Duration {
        let wait = hint.unwrap_or(self.next);
        self.next = (self.next * 2).min(CAP);
        wait.min(CAP * 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_hints_win() {
        let mut b = Backoff::new();
        assert_eq!(b.next(None), FIRST);
        assert_eq!(b.next(None), FIRST * 2);
        assert_eq!(
            b.next(Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        for _ in 0..10 {
            b.next(None);
        }
        assert_eq!(b.next(None), CAP);
    }
}
