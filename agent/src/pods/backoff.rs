//! Restart back-off (CrashLoopBackOff, ImagePullBackOff): the kubelet's shape — the first retry is
//! immediate, then 10 s doubling up to 300 s; a container that ran for 10 minutes starts over.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// Running this long without failing resets the back-off (kubelet: twice the maximum).
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    current: Duration,
}

impl Backoff {
    /// The delay before the next retry, given how long the last attempt lived.
    pub fn next_delay(&mut self, lived: Duration) -> Duration {
        if lived >= RESET_AFTER {
            self.current = Duration::ZERO;
        }
        let delay = self.current;
        self.current = if self.current.is_zero() {
            INITIAL
        } else {
            (self.current * 2).min(MAX)
        };
        delay
    }

    pub fn reset(&mut self) {
        self.current = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_cap() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let seen: Vec<u64> = (0..8).map(|_| b.next_delay(short).as_secs()).collect();
        assert_eq!(seen, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn long_run_resets() {
        let mut b = Backoff::default();
        b.next_delay(Duration::ZERO);
        b.next_delay(Duration::ZERO);
        assert_eq!(b.next_delay(Duration::from_secs(601)), Duration::ZERO);
        assert_eq!(b.next_delay(Duration::ZERO), INITIAL);
        b.reset();
        assert_eq!(b.next_delay(Duration::ZERO), Duration::ZERO);
    }
}
