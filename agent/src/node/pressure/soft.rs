//! Soft eviction thresholds (`--eviction-soft`, `--eviction-soft-grace-period`,
//! `--eviction-max-pod-grace-period`), as the kubelet's eviction manager has them: a soft threshold raises
//! its node condition as soon as it is crossed, but drives evictions only once it has been crossed without
//! a break for its grace period (`thresholdsFirstObservedAt` / `thresholdsMetGracePeriod`). A pod evicted
//! for it is stopped gracefully (`MaxPodGracePeriodSeconds`, or the pod's own grace period when that is 0).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::min_reclaim::{self, MinReclaims};
use super::{Crossed, Observations, Signal, Threshold, parse_duration, reclaim_rank};

/// A soft threshold: it must stay crossed for `grace` before pods are evicted for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftThreshold {
    pub threshold: Threshold,
    pub grace: Duration,
}

/// Parsed `--eviction-soft-grace-period` (`memory.available=1m30s,nodefs.available=2m`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GracePeriods(pub Vec<(Signal, Duration)>);

/// Parse `memory.available=1m30s,…` (clap's value parser). A signal given twice is an error; an empty string
/// means none.
pub fn parse_grace_periods(s: &str) -> Result<GracePeriods, String> {
    let mut out: Vec<(Signal, Duration)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, raw) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected <signal>=<duration>"))?;
        let signal = Signal::parse(name.trim())?;
        let grace = parse_duration(raw).map_err(|e| format!("{item:?}: {e}"))?;
        if out.iter().any(|(s, _)| *s == signal) {
            return Err(format!("{item:?}: signal {} given twice", signal.name()));
        }
        out.push((signal, grace));
    }
    Ok(GracePeriods(out))
}

/// Join the soft thresholds with their grace periods; a soft threshold without one is refused with the
/// kubelet's message. Grace periods of signals without a soft threshold are ignored, as by the kubelet.
pub fn combine(soft: &[Threshold], grace: &GracePeriods) -> Result<Vec<SoftThreshold>, String> {
    soft.iter()
        .map(|t| {
            let (_, grace) = grace
                .0
                .iter()
                .find(|(s, _)| *s == t.signal)
                .ok_or_else(|| {
                    format!(
                        "grace period must be specified for the soft eviction threshold {}",
                        t.signal.name()
                    )
                })?;
            Ok(SoftThreshold {
                threshold: *t,
                grace: *grace,
            })
        })
        .collect()
}

/// When each soft threshold crossed now was first seen crossed (the kubelet's `thresholdsFirstObservedAt`):
/// a threshold no longer crossed is forgotten, so its grace period starts over the next time.
#[derive(Debug, Default)]
pub struct FirstObserved(HashMap<Signal, Instant>);

impl FirstObserved {
    /// The soft thresholds crossed in `obs` that have been crossed for their whole grace period by `now`.
    pub fn met(
        &mut self,
        soft: &[SoftThreshold],
        obs: &Observations,
        now: Instant,
    ) -> Vec<Crossed> {
        self.met_holding(soft, &[], &MinReclaims::default(), obs, now)
    }

    /// [`FirstObserved::met`] where the signals in `held` (met last round) count as crossed until their
    /// minimum reclaim is reclaimed, so their grace period goes on (the kubelet merges the thresholds not
    /// yet resolved before it tracks when each was first observed).
    pub fn met_holding(
        &mut self,
        soft: &[SoftThreshold],
        held: &[Signal],
        min: &MinReclaims,
        obs: &Observations,
        now: Instant,
    ) -> Vec<Crossed> {
        let thresholds: Vec<Threshold> = soft.iter().map(|s| s.threshold).collect();
        let now_crossed = min_reclaim::met(&thresholds, held, min, obs);
        let previous = std::mem::take(&mut self.0);
        for c in &now_crossed {
            let first = previous.get(&c.signal).copied().unwrap_or(now);
            self.0.insert(c.signal, first);
        }
        now_crossed
            .into_iter()
            .filter(|c| {
                let grace = soft
                    .iter()
                    .find(|s| s.threshold.signal == c.signal)
                    .map_or(Duration::ZERO, |s| s.grace);
                self.0
                    .get(&c.signal)
                    .is_some_and(|first| now.saturating_duration_since(*first) >= grace)
            })
            .collect()
    }
}

/// The threshold to reclaim: the first in reclaim order (memory, pids, disk) of the hard thresholds crossed
/// and the soft ones met, a hard one before a soft one of the same rank. `true` when it is soft.
pub fn pick(hard: &[Crossed], soft_met: &[Crossed]) -> Option<(Crossed, bool)> {
    let first = |list: &[Crossed]| list.iter().min_by_key(|c| reclaim_rank(c.signal)).copied();
    match (first(hard), first(soft_met)) {
        (Some(h), Some(s)) if reclaim_rank(s.signal) < reclaim_rank(h.signal) => Some((s, true)),
        (Some(h), _) => Some((h, false)),
        (None, Some(s)) => Some((s, true)),
        (None, None) => None,
    }
}

/// How long a pod evicted for a soft threshold gets to stop, as the kubelet's pod workers compute it from
/// the eviction manager's override: `--eviction-max-pod-grace-period` when not 0 (whatever the pod asks
/// for), otherwise the pod's `terminationGracePeriodSeconds` (30 when unset); never less than 1 s.
pub fn eviction_grace(max_pod_grace_period: i64, pod_grace: Option<i64>) -> Duration {
    let secs = if max_pod_grace_period != 0 {
        max_pod_grace_period
    } else {
        pod_grace.unwrap_or(30)
    };
    Duration::from_secs(secs.max(1).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::super::{Value, parse_thresholds};
    use super::*;

    #[test]
    fn parses_grace_periods_and_needs_one_per_soft_threshold() {
        let g = parse_grace_periods("memory.available=1m30s, nodefs.available=2m").expect("valid");
        assert_eq!(
            g.0,
            [
                (Signal::MemoryAvailable, Duration::from_secs(90)),
                (Signal::NodefsAvailable, Duration::from_secs(120))
            ]
        );
        assert_eq!(
            parse_grace_periods("").expect("valid"),
            GracePeriods::default()
        );
        for (bad, says) in [
            ("memory.available", "expected <signal>=<duration>"),
            ("memory.free=1m", "unknown eviction signal"),
            ("memory.available=soon", "duration"),
            ("memory.available=-1m", "duration"),
            ("memory.available=1m,memory.available=2m", "twice"),
        ] {
            let err = parse_grace_periods(bad).expect_err("rejected");
            assert!(err.contains(says), "{bad}: {err}");
        }

        let soft = parse_thresholds("memory.available<1Gi,nodefs.available<15%").expect("valid");
        let joined = combine(&soft, &g).expect("every soft threshold has a grace period");
        assert_eq!(joined[0].grace, Duration::from_secs(90));
        assert_eq!(joined[1].threshold.value, Value::Percent(15.0));
        let only_memory =
            parse_grace_periods("memory.available=1m,pid.available=5m").expect("valid");
        assert_eq!(
            combine(&soft, &only_memory),
            Err(
                "grace period must be specified for the soft eviction threshold nodefs.available"
                    .into()
            )
        );
        assert_eq!(combine(&[], &only_memory), Ok(vec![]));
    }

    fn obs(memory_available: u64) -> Observations {
        Observations {
            memory: Some((memory_available, 8 << 30)),
            ..Default::default()
        }
    }

    #[test]
    fn met_only_after_crossed_for_the_grace_period() {
        let soft = combine(
            &parse_thresholds("memory.available<1Gi").expect("valid"),
            &parse_grace_periods("memory.available=1m30s").expect("valid"),
        )
        .expect("valid");
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let low = obs(512 << 20);
        let mut first = FirstObserved::default();
        assert!(
            first.met(&soft, &obs(2 << 30), at(0)).is_empty(),
            "not crossed"
        );
        assert!(
            first.met(&soft, &low, at(10)).is_empty(),
            "crossed, grace starts"
        );
        assert!(first.met(&soft, &low, at(99)).is_empty(), "89 s < 90 s");
        let met = first.met(&soft, &low, at(100));
        assert_eq!(met.len(), 1, "crossed for 90 s");
        assert_eq!(met[0].threshold, 1 << 30);
        assert_eq!(met[0].available, 512 << 20);
        // One observation above the threshold and the grace period starts over.
        assert!(first.met(&soft, &obs(2 << 30), at(101)).is_empty());
        assert!(first.met(&soft, &low, at(102)).is_empty());
        assert!(first.met(&soft, &low, at(191)).is_empty());
        assert_eq!(first.met(&soft, &low, at(192)).len(), 1);
        // A zero grace period is met at once; no soft thresholds, nothing met.
        let zero = [SoftThreshold {
            grace: Duration::ZERO,
            ..soft[0]
        }];
        assert_eq!(FirstObserved::default().met(&zero, &low, at(0)).len(), 1);
        assert!(FirstObserved::default().met(&[], &low, at(0)).is_empty());
    }

    #[test]
    fn conditions_follow_soft_thresholds_before_their_grace_period() {
        let e = super::super::Eviction {
            hard: parse_thresholds("nodefs.available<1%").expect("valid"),
            soft: combine(
                &parse_thresholds("memory.available<1Gi").expect("valid"),
                &parse_grace_periods("memory.available=10m").expect("valid"),
            )
            .expect("valid"),
            max_pod_grace_period: 0,
            transition_period: Duration::ZERO,
            nodefs: "/".into(),
            imagefs: "/".into(),
            min_reclaim: Default::default(),
        };
        let all = e.all_thresholds();
        assert_eq!(all.len(), 2);
        assert!(super::super::decide(&all, &obs(512 << 20)).memory);
        assert!(!super::super::decide(&all, &obs(2 << 30)).memory);
    }

    #[test]
    fn picks_in_reclaim_order_hard_first() {
        let c = |signal| Crossed {
            signal,
            threshold: 10,
            available: 5,
        };
        let mem = c(Signal::MemoryAvailable);
        let disk = c(Signal::NodefsAvailable);
        assert_eq!(pick(&[], &[]), None);
        assert_eq!(pick(&[disk], &[]), Some((disk, false)));
        assert_eq!(pick(&[], &[disk]), Some((disk, true)));
        assert_eq!(pick(&[disk], &[mem]), Some((mem, true)), "memory first");
        assert_eq!(pick(&[mem], &[disk]), Some((mem, false)));
        assert_eq!(pick(&[mem], &[mem]), Some((mem, false)), "hard before soft");
    }

    #[test]
    fn grace_of_a_soft_eviction() {
        // 0: the pod's own grace period (30 s when unset).
        assert_eq!(eviction_grace(0, Some(45)), Duration::from_secs(45));
        assert_eq!(eviction_grace(0, None), Duration::from_secs(30));
        // Set: that value, even above the pod's, as the kubelet's pod workers do.
        assert_eq!(eviction_grace(20, Some(45)), Duration::from_secs(20));
        assert_eq!(eviction_grace(60, Some(5)), Duration::from_secs(60));
        // Never below 1 s (a negative maximum too).
        assert_eq!(eviction_grace(0, Some(0)), Duration::from_secs(1));
        assert_eq!(eviction_grace(-5, Some(45)), Duration::from_secs(1));
    }
}
