//! When a CronJob is due (kube's `mostRecentScheduleTime`, `nextScheduleTime` and
//! `nextScheduleTimeDuration`), as pure functions of "now".

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::resources::cronjob::schedule::Schedule;

/// After this many missed start times kube warns (`TooManyMissedTimes`).
pub const TOO_MANY_MISSED: i64 = 100;

/// What the schedule says about the interval from `earliest` to `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The most recent start time in `(earliest, now]`.
    pub most_recent: Option<Timestamp>,
    /// About how many start times that interval holds (kube's approximation beyond a few).
    pub missed: i64,
}

/// The start times in `(earliest, now]`: the most recent one and about how many there are.
pub fn most_recent(earliest: Timestamp, now: Timestamp, s: &Schedule, tz: &TimeZone) -> Due {
    let none = Due {
        most_recent: None,
        missed: 0,
    };
    let Some(t1) = s.next(earliest, tz).filter(|t| *t <= now) else {
        return none;
    };
    let Some(t2) = s.next(t1, tz).filter(|t| *t <= now) else {
        return Due {
            most_recent: Some(t1),
            missed: 1,
        };
    };
    // Walk a few steps; beyond that find the last start time from a window before now that doubles.
    let mut last = t2;
    let mut count = 2;
    while count <= TOO_MANY_MISSED {
        match s.next(last, tz).filter(|t| *t <= now) {
            Some(t) => {
                last = t;
                count += 1;
            }
            None => {
                return Due {
                    most_recent: Some(last),
                    missed: count,
                };
            }
        }
    }
    let mut window = SignedDuration::from_secs(60);
    let mut start = last;
    loop {
        let Ok(from) = now.checked_sub(window) else {
            break;
        };
        if from <= last {
            break;
        }
        if s.next(from, tz).is_some_and(|t| t <= now) {
            start = from;
            break;
        }
        window = window.saturating_mul(2);
    }
    let mut recent = last;
    let mut t = start;
    while let Some(n) = s.next(t, tz).filter(|n| *n <= now) {
        recent = n;
        t = n;
    }
    // kube's estimate: the elapsed time over the first interval.
    let interval = (t2.as_second() - t1.as_second()).max(1);
    Due {
        most_recent: Some(recent),
        missed: (now.as_second() - t1.as_second()) / interval + 1,
    }
}

/// kube's `nextScheduleTime`: the start time a CronJob should run now (counted from `earliest` or, with
/// `starting_deadline` seconds, no earlier than that before now).
pub fn due(
    earliest: Timestamp,
    starting_deadline: Option<i64>,
    now: Timestamp,
    s: &Schedule,
    tz: &TimeZone,
) -> Due {
    let mut from = earliest;
    if let Some(secs) = starting_deadline
        && let Ok(deadline) = now.checked_sub(SignedDuration::from_secs(secs))
        && deadline > from
    {
        from = deadline;
    }
    most_recent(from, now, s, tz)
}

/// kube's `nextScheduleTimeDuration`: when to look again (the start time after the most recent one, or
/// after `earliest`, plus 100 ms).
pub fn requeue_at(
    earliest: Timestamp,
    now: Timestamp,
    s: &Schedule,
    tz: &TimeZone,
) -> Option<Timestamp> {
    let base = most_recent(earliest, now, s, tz)
        .most_recent
        .unwrap_or(earliest);
    let next = s.next(base.max(now), tz).or_else(|| s.next(base, tz))?;
    next.checked_add(SignedDuration::from_millis(100)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::cronjob::schedule::parse;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn recent(spec: &str, earliest: &str, now: &str) -> (Option<String>, i64) {
        let s = parse(spec).expect("valid");
        let d = most_recent(ts(earliest), ts(now), &s, &TimeZone::UTC);
        (d.most_recent.map(|t| t.to_string()), d.missed)
    }

    #[test]
    fn most_recent_start_times() {
        let every = "* * * * *";
        assert_eq!(
            recent(every, "2024-01-01T00:00:00Z", "2024-01-01T00:00:59Z"),
            (None, 0)
        );
        assert_eq!(
            recent(every, "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"),
            (Some("2024-01-01T00:01:00Z".into()), 1)
        );
        assert_eq!(
            recent(every, "2024-01-01T00:00:00Z", "2024-01-01T00:05:30Z"),
            (Some("2024-01-01T00:05:00Z".into()), 5)
        );
        // Far behind: the most recent is exact, the count is kube's estimate.
        assert_eq!(
            recent(every, "2024-01-01T00:00:00Z", "2024-01-02T00:00:30Z"),
            (Some("2024-01-02T00:00:00Z".into()), 1440)
        );
        assert_eq!(
            recent("0 0 1 * *", "2020-01-15T00:00:00Z", "2024-06-15T00:00:00Z"),
            (Some("2024-06-01T00:00:00Z".into()), 53)
        );
    }

    #[test]
    fn starting_deadline_limits_how_far_back() {
        let s = parse("*/10 * * * *").expect("valid");
        let d = due(
            ts("2024-01-01T00:00:00Z"),
            Some(330),
            ts("2024-01-01T00:25:00Z"),
            &s,
            &TimeZone::UTC,
        );
        // 00:20 is within the last 330 s (kube counts start times strictly after now - deadline).
        assert_eq!(d.most_recent, Some(ts("2024-01-01T00:20:00Z")));
        let d = due(
            ts("2024-01-01T00:00:00Z"),
            Some(60),
            ts("2024-01-01T00:25:00Z"),
            &s,
            &TimeZone::UTC,
        );
        assert_eq!(d.most_recent, None);
    }

    #[test]
    fn requeue_after_the_next_start_time() {
        let s = parse("*/10 * * * *").expect("valid");
        let at = requeue_at(
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-01T00:25:00Z"),
            &s,
            &TimeZone::UTC,
        );
        assert_eq!(at, Some(ts("2024-01-01T00:30:00.1Z")));
        let never = parse("0 0 30 2 *").expect("valid");
        assert_eq!(
            requeue_at(
                ts("2024-01-01T00:00:00Z"),
                ts("2024-01-01T00:25:00Z"),
                &never,
                &TimeZone::UTC
            ),
            None
        );
    }
}
