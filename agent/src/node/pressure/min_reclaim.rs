//! Minimum reclaim (`--eviction-minimum-reclaim`, the kubelet's `evictionMinimumReclaim`): once a threshold
//! has been met (a hard one crossed, a soft one crossed for its grace period) it stays met until what is
//! available reaches the threshold plus the minimum reclaim, so that the node is not back under pressure a
//! moment after the first pod (or image) is gone. The kubelet's `thresholdsMet(…, enforceMinReclaim)`: the
//! thresholds met last round are checked against `threshold + minimum reclaim`, the others against the
//! threshold alone; after node-level reclaim every threshold is checked with its minimum reclaim.

use std::sync::{Arc, Mutex};

use super::{Crossed, Observations, Signal, Threshold, Value, parse_value, reclaim_rank};

/// Parsed `--eviction-minimum-reclaim` (`nodefs.available=500Mi,imagefs.available=2Gi`, percentages of the
/// capacity allowed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinReclaims(pub Vec<(Signal, Value)>);

impl MinReclaims {
    /// The minimum reclaim of a signal, in bytes (inodes, pids) of `capacity`; 0 when none is set.
    pub fn bytes_of(&self, signal: Signal, capacity: u64) -> u64 {
        self.0
            .iter()
            .find(|(s, _)| *s == signal)
            .map_or(0, |(_, v)| v.bytes_of(capacity))
    }
}

/// Parse `nodefs.available=500Mi,imagefs.available=10%` (clap's value parser). As the kubelet: a
/// percentage must be above 0, a quantity must not be negative; a signal given twice is an error (the
/// kubelet's map keeps one silently); an empty string means none.
pub fn parse_min_reclaims(s: &str) -> Result<MinReclaims, String> {
    let mut out: Vec<(Signal, Value)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, raw) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected <signal>=<quantity or percentage>"))?;
        let signal = Signal::parse(name.trim())?;
        let value = parse_value(item, raw)?;
        if value == Value::Percent(0.0) {
            return Err(format!("{item:?}: a percentage must be positive"));
        }
        if out.iter().any(|(s, _)| *s == signal) {
            return Err(format!("{item:?}: signal {} given twice", signal.name()));
        }
        out.push((signal, value));
    }
    Ok(MinReclaims(out))
}

/// The signals of the thresholds met at the eviction manager's last round (the kubelet's `thresholdsMet`),
/// hard and soft apart since one signal can have both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub hard: Vec<Signal>,
    pub soft: Vec<Signal>,
}

/// Minimum reclaim amounts and the thresholds they hold; clones share the held set, so the node status
/// sync sees what the eviction manager last met and keeps its condition until the minimum is reclaimed.
#[derive(Debug, Clone, Default)]
pub struct MinReclaim {
    pub amounts: MinReclaims,
    held: Arc<Mutex<Held>>,
}

impl MinReclaim {
    pub fn new(amounts: MinReclaims) -> Self {
        Self {
            amounts,
            held: Arc::default(),
        }
    }

    pub fn held(&self) -> Held {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_held(&self, held: Held) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = held;
    }
}

/// The thresholds met in `obs`: crossed (available < threshold), or, for a signal in `held`, not yet
/// reclaimed (available < threshold + minimum reclaim). `Crossed::threshold` is the threshold itself, as
/// the kubelet's eviction message shows it. In reclaim order.
pub fn met(
    thresholds: &[Threshold],
    held: &[Signal],
    min: &MinReclaims,
    obs: &Observations,
) -> Vec<Crossed> {
    let mut out: Vec<Crossed> = thresholds
        .iter()
        .filter_map(|t| {
            let (available, capacity) = obs.of(t.signal)?;
            let threshold = t.value.bytes_of(capacity);
            let extra = if held.contains(&t.signal) {
                min.bytes_of(t.signal, capacity)
            } else {
                0
            };
            (available < threshold.saturating_add(extra)).then_some(Crossed {
                signal: t.signal,
                threshold,
                available,
            })
        })
        .collect();
    out.sort_by_key(|c| reclaim_rank(c.signal));
    out
}

/// Every threshold checked with its minimum reclaim: after node-level reclaim, pods are spared only when
/// this is empty (the kubelet's `reclaimNodeLevelResources`).
pub fn met_enforcing(
    thresholds: &[Threshold],
    min: &MinReclaims,
    obs: &Observations,
) -> Vec<Crossed> {
    let all: Vec<Signal> = thresholds.iter().map(|t| t.signal).collect();
    met(thresholds, &all, min, obs)
}

#[cfg(test)]
mod tests {
    use super::super::parse_thresholds;
    use super::*;

    const GI: u64 = 1 << 30;

    #[test]
    fn parses_minimum_reclaims() {
        let m = parse_min_reclaims(
            "nodefs.available=500Mi, imagefs.available=2Gi,nodefs.inodesFree=5%",
        )
        .expect("valid");
        assert_eq!(
            m.0,
            [
                (Signal::NodefsAvailable, Value::Amount(500 << 20)),
                (Signal::ImagefsAvailable, Value::Amount(2 * GI)),
                (Signal::NodefsInodesFree, Value::Percent(5.0)),
            ]
        );
        assert_eq!(m.bytes_of(Signal::NodefsInodesFree, 1000), 50);
        assert_eq!(m.bytes_of(Signal::MemoryAvailable, 1000), 0, "none set");
        assert_eq!(
            parse_min_reclaims("").expect("valid"),
            MinReclaims::default()
        );
        assert_eq!(
            parse_min_reclaims("memory.available=0")
                .expect("0 is allowed")
                .0,
            [(Signal::MemoryAvailable, Value::Amount(0))]
        );
        for (bad, says) in [
            (
                "nodefs.available<500Mi",
                "expected <signal>=<quantity or percentage>",
            ),
            ("nodefs.free=1Gi", "unknown eviction signal"),
            ("nodefs.available=lots", "nodefs.available"),
            ("nodefs.available=-1Gi", "negative"),
            ("nodefs.available=0%", "positive"),
            ("nodefs.available=150%", "between"),
            ("nodefs.available=1Gi,nodefs.available=2Gi", "twice"),
        ] {
            let err = parse_min_reclaims(bad).expect_err("rejected");
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    fn nodefs(available: u64) -> Observations {
        Observations {
            nodefs_bytes: Some((available, 100 * GI)),
            memory: Some((8 * GI, 16 * GI)),
            ..Default::default()
        }
    }

    #[test]
    fn a_met_threshold_stays_met_until_the_minimum_is_reclaimed() {
        let t = parse_thresholds("nodefs.available<10Gi,memory.available<1Gi").expect("valid");
        let min = parse_min_reclaims("nodefs.available=5%").expect("valid");
        let held = [Signal::NodefsAvailable];
        // Not met before: the threshold alone counts.
        assert!(met(&t, &[], &min, &nodefs(11 * GI)).is_empty());
        let crossed = met(&t, &[], &min, &nodefs(9 * GI));
        assert_eq!(
            crossed,
            [Crossed {
                signal: Signal::NodefsAvailable,
                threshold: 10 * GI,
                available: 9 * GI
            }],
            "the message shows the threshold without the minimum reclaim"
        );
        // Met last round: still met until 10Gi + 5 % of 100Gi = 15Gi are available.
        assert_eq!(met(&t, &held, &min, &nodefs(11 * GI)).len(), 1);
        assert_eq!(met(&t, &held, &min, &nodefs(15 * GI - 1)).len(), 1);
        assert!(met(&t, &held, &min, &nodefs(15 * GI)).is_empty());
        // A signal without a minimum reclaim is held at its threshold.
        assert!(met(&t, &held, &MinReclaims::default(), &nodefs(10 * GI)).is_empty());
        // After node-level reclaim every threshold is checked with its minimum reclaim.
        assert_eq!(met_enforcing(&t, &min, &nodefs(12 * GI)).len(), 1);
        assert!(met_enforcing(&t, &min, &nodefs(15 * GI)).is_empty());
        // An unmeasured signal meets nothing.
        assert!(met(&t, &held, &min, &Observations::default()).is_empty());
    }

    #[test]
    fn clones_share_the_held_thresholds() {
        let a = MinReclaim::new(MinReclaims::default());
        let b = a.clone();
        let held = Held {
            hard: vec![Signal::NodefsAvailable],
            soft: vec![],
        };
        a.set_held(held.clone());
        assert_eq!(b.held(), held);
    }
}
