//! The delay before a Job replaces failed pods (kube's pod failure back-off): 10 s after the first failure
//! since the last success, doubling with each further one, capped at 10 min (kube 1.32's
//! `DefaultJobPodFailureBackOff` / `MaxJobPodFailureBackOff`), counted from the last failure's finish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// kube's `DefaultJobPodFailureBackOff`.
pub const DEFAULT_BASE: Duration = Duration::from_secs(10);
/// kube's `MaxJobPodFailureBackOff`.
pub const MAX: Duration = Duration::from_secs(600);

static BASE_MS: AtomicU64 = AtomicU64::new(DEFAULT_BASE.as_millis() as u64);

/// Set the first back-off of the Job controllers this process runs (`--job-pod-failure-backoff`; tests and
/// labs shorten it).
pub fn set_pod_failure_backoff(base: Duration) {
    BASE_MS.store(
        base.as_millis().min(u128::from(u64::MAX)) as u64,
        Ordering::Relaxed,
    );
}

/// `10s`, `500ms`, `2m` or a number of seconds.
pub fn parse_backoff(text: &str) -> Result<Duration, String> {
    let err = || format!("{text:?}: expected a duration such as 10s, 500ms or 1m");
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1000)
    };
    let n: u64 = number.parse().map_err(|_| err())?;
    let ms = n.checked_mul(unit_ms).ok_or_else(err)?;
    if ms == 0 {
        return Err(format!("{text:?}: must be greater than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// The back-off settings of a controller.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub base: Duration,
    pub max: Duration,
}

impl Settings {
    /// What [`set_pod_failure_backoff`] set (10 s by default), capped at 10 min.
    pub fn current() -> Settings {
        Settings {
            base: Duration::from_millis(BASE_MS.load(Ordering::Relaxed)),
            max: MAX,
        }
    }
}

/// What the controller remembers of a Job's failures (kube's `backoffRecord`), in UNIX milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub failures_after_last_success: u32,
    pub last_failure_ms: Option<i64>,
}

impl Record {
    /// The record after newly counted pods (their finish times): a success resets it, failures after
    /// the last success add up.
    pub fn next(self, succeeded: &[i64], failed: &[i64]) -> Record {
        let mut failed = failed.to_vec();
        failed.sort_unstable();
        if failed.is_empty() {
            return if succeeded.is_empty() {
                self
            } else {
                Record::default()
            };
        }
        let Some(last_success) = succeeded.iter().max().copied() else {
            return Record {
                failures_after_last_success: self.failures_after_last_success + failed.len() as u32,
                last_failure_ms: failed.last().copied(),
            };
        };
        let after: Vec<i64> = failed.into_iter().filter(|f| *f > last_success).collect();
        Record {
            failures_after_last_success: after.len() as u32,
            last_failure_ms: after.last().copied(),
        }
    }

    /// How long pod creation still waits at `now_ms`.
    pub fn remaining(&self, settings: Settings, now_ms: i64) -> Duration {
        let (Some(last), n) = (self.last_failure_ms, self.failures_after_last_success) else {
            return Duration::ZERO;
        };
        if n == 0 {
            return Duration::ZERO;
        }
        let mut delay = settings.base;
        for _ in 1..n {
            delay = delay.saturating_mul(2);
            if delay >= settings.max {
                delay = settings.max;
                break;
            }
        }
        let elapsed = Duration::from_millis((now_ms - last).max(0) as u64);
        delay.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        base: Duration::from_secs(10),
        max: Duration::from_secs(600),
    };

    #[test]
    fn delay_doubles_from_the_last_failure_and_is_capped() {
        let r = Record::default().next(&[], &[1_000]);
        assert_eq!(r.failures_after_last_success, 1);
        assert_eq!(r.remaining(S, 1_000), Duration::from_secs(10));
        assert_eq!(r.remaining(S, 4_000), Duration::from_secs(7));
        assert_eq!(r.remaining(S, 20_000), Duration::ZERO);
        let r = r.next(&[], &[30_000, 25_000]);
        assert_eq!(r.failures_after_last_success, 3);
        assert_eq!(r.last_failure_ms, Some(30_000));
        assert_eq!(r.remaining(S, 30_000), Duration::from_secs(40));
        let mut many = r;
        many.failures_after_last_success = 12;
        assert_eq!(many.remaining(S, 30_000), Duration::from_secs(600));
        // Nothing new: unchanged.
        assert_eq!(r.next(&[], &[]), r);
    }

    #[test]
    fn a_success_resets_the_count() {
        let r = Record {
            failures_after_last_success: 4,
            last_failure_ms: Some(5_000),
        };
        assert_eq!(r.next(&[6_000], &[]), Record::default());
        // Failures after the success still count; earlier ones do not.
        let r = r.next(&[6_000], &[4_000, 7_000, 8_000]);
        assert_eq!(r.failures_after_last_success, 2);
        assert_eq!(r.last_failure_ms, Some(8_000));
        assert_eq!(r.remaining(S, 8_000), Duration::from_secs(20));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_backoff("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_backoff("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_backoff("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_backoff("3"), Ok(Duration::from_secs(3)));
        assert!(parse_backoff("0s").is_err());
        assert!(parse_backoff("x").is_err());
        assert!(parse_backoff("-1s").is_err());
    }
}
