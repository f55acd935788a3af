//! kube's normalization of a recommendation: `normalizeDesiredReplicasWithBehaviors` for an HPA with
//! `behavior` (one direction's stabilization window over the recommendation history, that direction's
//! scale policies over its recent scale events, min/max) and `normalizeDesiredReplicas` for one without
//! (the controller's 300 s downscale window, at most max(2 × current, 4), min/max) — with the AbleToScale
//! and ScalingLimited reasons and messages kube reports.

use serde_json::Value;

use crate::resources::hpa::{default_scale_down, default_scale_up, fill_rules};

/// kube's `--horizontal-pod-autoscaler-downscale-stabilization` (used when `behavior` is unset).
pub const DOWNSCALE_STABILIZATION: f64 = 300.0;

/// One HPA's memory between syncs (kube keeps the same in the controller), times in seconds since the
/// controller started.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// (time, recommended replicas).
    pub recommendations: Vec<(f64, i64)>,
    /// (time, replicas added) of the scale-ups (only with `behavior`, as kube).
    pub up_events: Vec<(f64, i64)>,
    /// (time, replicas removed) of the scale-downs.
    pub down_events: Vec<(f64, i64)>,
}

impl History {
    /// kube's `recordInitialRecommendation`: a new HPA starts with the current replicas as its first
    /// recommendation, so a restarted controller does not scale down before the window has passed.
    pub fn initial(current: i64, now: f64) -> History {
        History {
            recommendations: vec![(now, current)],
            ..History::default()
        }
    }

    /// kube's `storeScaleEvent` (nothing without `behavior`): remembers a rescale for the policies;
    /// events older than the direction's longest policy period are dropped.
    pub fn record_scale(&mut self, behavior: Option<&Value>, now: f64, from: i64, to: i64) {
        let Some(behavior) = behavior else { return };
        let (events, r, change) = if to > from {
            (
                &mut self.up_events,
                rules(Some(behavior), "scaleUp"),
                to - from,
            )
        } else {
            (
                &mut self.down_events,
                rules(Some(behavior), "scaleDown"),
                from - to,
            )
        };
        let longest = policies(&r)
            .iter()
            .map(|p| int(p, "periodSeconds"))
            .max()
            .unwrap_or(0) as f64;
        events.retain(|(t, _)| now - t <= longest);
        events.push((now, change));
    }
}

/// A condition's (reason, message).
pub type Reason = (&'static str, &'static str);

/// The result of normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub replicas: i64,
    /// AbleToScale (True): ReadyForNewScale, ScaleUpStabilized or ScaleDownStabilized.
    pub able: Reason,
    /// ScalingLimited: whether it holds, and why (DesiredWithinRange when it does not).
    pub limited: (bool, Reason),
}

const READY: Reason = ("ReadyForNewScale", "recommended size matches current size");
const UP_STABILIZED: Reason = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const DOWN_STABILIZED: Reason = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const WITHIN: Reason = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const UP_LIMIT: Reason = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const DOWN_LIMIT: Reason = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: Reason = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: Reason = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);

fn int(v: &Value, f: &str) -> i64 {
    v.get(f).and_then(Value::as_i64).unwrap_or(0)
}

fn policies(r: &Value) -> Vec<Value> {
    r.get("policies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn select(r: &Value) -> &str {
    r.get("selectPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Max")
}

/// The rules of one direction, kube's defaults filling what `behavior` leaves unset.
fn rules(behavior: Option<&Value>, key: &str) -> Value {
    let defaults = if key == "scaleUp" {
        default_scale_up()
    } else {
        default_scale_down()
    };
    fill_rules(behavior.and_then(|b| b.get(key)), defaults)
}

/// Replicas changed by the events of the last `period` seconds (kube's `getReplicasChangePerPeriod`).
fn changed(events: &[(f64, i64)], now: f64, period: f64) -> i64 {
    events
        .iter()
        .filter(|(t, _)| now - t < period)
        .map(|(_, d)| d)
        .sum()
}

/// kube's `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`: the
/// most (up) or fewest (down) replicas the policies allow now. `Max` picks the policy allowing the
/// biggest change, `Min` the smallest, `Disabled` allows none.
fn limit(current: i64, h: &History, now: f64, r: &Value, up: bool) -> i64 {
    if select(r) == "Disabled" {
        return current;
    }
    let events = if up { &h.up_events } else { &h.down_events };
    let biggest_change = select(r) != "Min";
    let mut result: Option<i64> = None;
    for p in policies(r) {
        let done = changed(events, now, int(&p, "periodSeconds") as f64);
        let value = int(&p, "value");
        let percent = p.get("type").and_then(Value::as_str) == Some("Percent");
        let proposed = if up {
            let start = current - done;
            if percent {
                (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64
            } else {
                start + value
            }
        } else {
            let start = current + done;
            if percent {
                (start as f64 * (1.0 - value as f64 / 100.0)) as i64
            } else {
                start - value
            }
        };
        // Up: the bigger limit is the bigger change; down: the smaller one.
        let pick_max = biggest_change == up;
        result = Some(match result {
            None => proposed,
            Some(x) if pick_max => x.max(proposed),
            Some(x) => x.min(proposed),
        });
    }
    result.unwrap_or(current)
}

/// Remember `desired` and return the stabilized recommendation: over the window's recommendations, the
/// lowest one when scaling up (or staying), the highest one when scaling down. Recommendations older
/// than `keep` seconds are forgotten.
fn stabilize(h: &mut History, now: f64, desired: i64, window: f64, up: bool, keep: f64) -> i64 {
    let mut rec = desired;
    for (t, r) in &h.recommendations {
        if now - t < window {
            rec = if up { rec.min(*r) } else { rec.max(*r) };
        }
    }
    h.recommendations.retain(|(t, _)| now - t <= keep);
    h.recommendations.push((now, desired));
    rec
}

/// Normalize the metrics' recommendation `desired` for a target at `current` replicas, recording it in
/// the history. `behavior` is the HPA's `spec.behavior` (`None`: unset).
pub fn normalize(
    h: &mut History,
    now: f64,
    behavior: Option<&Value>,
    current: i64,
    desired: i64,
    min: i64,
    max: i64,
) -> Normalized {
    let Some(behavior) = behavior else {
        return normalize_without_behavior(h, now, current, desired, min, max);
    };
    let up_rules = rules(Some(behavior), "scaleUp");
    let down_rules = rules(Some(behavior), "scaleDown");
    let up_window = int(&up_rules, "stabilizationWindowSeconds") as f64;
    let down_window = int(&down_rules, "stabilizationWindowSeconds") as f64;
    let up = desired >= current;
    let window = if up { up_window } else { down_window };
    let stabilized = stabilize(h, now, desired, window, up, up_window.max(down_window));
    let able = match (stabilized == desired, up) {
        (true, _) => READY,
        (false, true) => UP_STABILIZED,
        (false, false) => DOWN_STABILIZED,
    };
    let (replicas, reason) = if stabilized > current {
        let scale_limit = limit(current, h, now, &up_rules, true).max(current);
        let (allowed, reason) = if max > scale_limit {
            (scale_limit, UP_LIMIT)
        } else {
            (max, TOO_MANY)
        };
        if stabilized > allowed {
            (allowed, reason)
        } else {
            (stabilized, WITHIN)
        }
    } else if stabilized < current {
        let scale_limit = limit(current, h, now, &down_rules, false).min(current);
        let (allowed, reason) = if min < scale_limit {
            (scale_limit, DOWN_LIMIT)
        } else {
            (min, TOO_FEW)
        };
        if stabilized < allowed {
            (allowed, reason)
        } else {
            (stabilized, WITHIN)
        }
    } else {
        (stabilized, WITHIN)
    };
    Normalized {
        replicas,
        able,
        limited: (replicas != stabilized, reason),
    }
}

/// kube's `normalizeDesiredReplicas` (`stabilizeRecommendation` + `convertDesiredReplicasWithRules`).
fn normalize_without_behavior(
    h: &mut History,
    now: f64,
    current: i64,
    desired: i64,
    min: i64,
    max: i64,
) -> Normalized {
    let window = DOWNSCALE_STABILIZATION;
    let stabilized = stabilize(h, now, desired, window, false, window);
    let able = if stabilized == desired {
        READY
    } else {
        DOWN_STABILIZED
    };
    // kube's `calculateScaleUpLimit`: guards against a bogus usage spike.
    let scale_up_limit = (2 * current).max(4);
    let (allowed, over) = if max > scale_up_limit {
        (scale_up_limit, UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    let (replicas, reason) = if stabilized < min {
        (min, TOO_FEW)
    } else if stabilized > allowed {
        (allowed, over)
    } else {
        (stabilized, WITHIN)
    };
    Normalized {
        replicas,
        able,
        limited: (replicas != stabilized, reason),
    }
}

#[cfg(test)]
mod tests;
