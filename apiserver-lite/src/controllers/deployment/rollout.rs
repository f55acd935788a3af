//! The arithmetic of rollouts (kube's `deployment/util` and `rolling.go`/`sync.go`), without IO: surge and
//! unavailability, how far the new ReplicaSet may grow, how far old ones may shrink, proportional scaling.

use std::cmp::Ordering;

use serde_json::Value;

use super::super::owners::{int_at, seconds, str_at};
use super::template::{self, DESIRED_REPLICAS, MAX_REPLICAS};

pub fn replicas(object: &Value) -> i64 {
    int_at(object, "/spec/replicas").unwrap_or(1)
}

pub fn status_replicas(rs: &Value) -> i64 {
    int_at(rs, "/status/replicas").unwrap_or(0)
}

pub fn available(rs: &Value) -> i64 {
    int_at(rs, "/status/availableReplicas").unwrap_or(0)
}

pub fn ready(rs: &Value) -> i64 {
    int_at(rs, "/status/readyReplicas").unwrap_or(0)
}

pub fn recreate(d: &Value) -> bool {
    str_at(d, "/spec/strategy/type") == "Recreate"
}

/// kube's `GetScaledValueFromIntOrPercent`: an integer, or `N%` of `total` rounded up or down.
fn scaled(value: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) => {
                let v = p.saturating_mul(total);
                if round_up {
                    (v + 99).div_euclid(100)
                } else {
                    v.div_euclid(100)
                }
            }
            _ => s.parse().unwrap_or(0),
        },
        _ => {
            let v = 25 * total;
            if round_up { (v + 99) / 100 } else { v / 100 }
        }
    }
}

/// `(maxSurge, maxUnavailable)` resolved as kube's `ResolveFenceposts`: both 0 → unavailable 1.
fn fenceposts(d: &Value) -> (i64, i64) {
    let total = replicas(d);
    let surge = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        total,
        true,
    );
    let unavailable = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        total,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

pub fn max_surge(d: &Value) -> i64 {
    if recreate(d) { 0 } else { fenceposts(d).0 }
}

pub fn max_unavailable(d: &Value) -> i64 {
    if recreate(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// How many replicas the new ReplicaSet should have now (kube's `NewRSNewReplicas`); `all` includes it.
pub fn new_rs_replicas(d: &Value, all: &[&Value], new_rs_replicas: i64) -> i64 {
    if recreate(d) {
        return replicas(d);
    }
    let current: i64 = all.iter().map(|rs| replicas(rs)).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return new_rs_replicas;
    }
    let up = (max_total - current).min(replicas(d) - new_rs_replicas);
    new_rs_replicas + up
}

/// How many pods the old ReplicaSets may lose now (kube's `reconcileOldReplicaSets`, before the
/// unhealthy clean-up): 0 when nothing may go.
pub fn old_scale_down_room(d: &Value, all: &[&Value], new_rs: Option<&Value>) -> i64 {
    let all_pods: i64 = all.iter().map(|rs| replicas(rs)).sum();
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = new_rs.map_or(0, |rs| replicas(rs) - available(rs));
    all_pods - min_available - new_unavailable
}

fn created(rs: &Value) -> i64 {
    seconds(str_at(rs, "/metadata/creationTimestamp")).unwrap_or(0)
}

/// Oldest first, then by name (kube's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")))
}

/// Lowest revision first, then oldest (kube's `ReplicaSetsByRevision`).
pub fn by_revision(a: &Value, b: &Value) -> Ordering {
    template::revision(a)
        .cmp(&template::revision(b))
        .then_with(|| by_creation(a, b))
}

/// Plans scaling down unhealthy old replicas first (kube's `cleanupUnhealthyReplicas`): `(index into
/// olds, new size)`, and how many go.
pub fn unhealthy_cleanup(olds: &[&Value], room: i64) -> (Vec<(usize, i64)>, i64) {
    let mut order: Vec<usize> = (0..olds.len()).collect();
    order.sort_by(|a, b| by_creation(olds[*a], olds[*b]));
    let mut plan = Vec::new();
    let mut total = 0;
    for i in order {
        if total >= room {
            break;
        }
        let rs = olds[i];
        let (want, avail) = (replicas(rs), available(rs));
        // A status still counting pods of a larger size is no reason to grow (kube refuses that too).
        if want == 0 || want <= avail {
            continue;
        }
        let down = (room - total).min(want - avail);
        plan.push((i, want - down));
        total += down;
    }
    (plan, total)
}

/// Plans scaling old ReplicaSets down while at least `replicas - maxUnavailable` stay available (kube's
/// `scaleDownOldReplicaSetsForRollingUpdate`): `(index into olds, new size)`.
///
/// Unlike kube, a set counts at most its `spec.replicas` as available: a status written before a scale-down
/// took effect still counts the pods being deleted, and kube would then scale down once more on their
/// account, below `maxUnavailable`.
pub fn rolling_scale_down(d: &Value, all: &[&Value], olds: &[&Value]) -> Vec<(usize, i64)> {
    let min_available = replicas(d) - max_unavailable(d);
    let available_now: i64 = all.iter().map(|rs| available(rs).min(replicas(rs))).sum();
    if available_now <= min_available {
        return Vec::new();
    }
    let room = available_now - min_available;
    let mut order: Vec<usize> = (0..olds.len()).collect();
    order.sort_by(|a, b| by_creation(olds[*a], olds[*b]));
    let mut plan = Vec::new();
    let mut total = 0;
    for i in order {
        if total >= room {
            break;
        }
        let want = replicas(olds[i]);
        if want == 0 {
            continue;
        }
        let down = want.min(room - total);
        plan.push((i, want - down));
        total += down;
    }
    plan
}

/// kube's `IsSaturated`: the new ReplicaSet runs all replicas, all available.
pub fn saturated(d: &Value, new_rs: Option<&Value>) -> bool {
    let Some(rs) = new_rs else { return false };
    let want = replicas(d);
    template::annotation_int(rs, DESIRED_REPLICAS) == Some(want)
        && replicas(rs) == want
        && available(rs) == want
}

/// Proportional scaling (kube's `scale` for RollingUpdate when several ReplicaSets are active): the new
/// size of each of `active` (same order).
pub fn proportional(d: &Value, active: &[&Value]) -> Vec<i64> {
    let current: i64 = active.iter().map(|rs| replicas(rs)).sum();
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    let mut order: Vec<usize> = (0..active.len()).collect();
    // Growing: biggest (then newest) first; shrinking: biggest (then oldest) first.
    order.sort_by(|a, b| {
        let (ra, rb) = (active[*a], active[*b]);
        replicas(rb).cmp(&replicas(ra)).then_with(|| {
            if to_add > 0 {
                by_creation(rb, ra)
            } else {
                by_creation(ra, rb)
            }
        })
    });
    let mut sizes: Vec<i64> = active.iter().map(|rs| replicas(rs)).collect();
    if to_add == 0 {
        return sizes;
    }
    let target = replicas(d) + max_surge(d);
    let mut added = 0;
    for &i in &order {
        let rs = active[i];
        if replicas(rs) == 0 || added == to_add {
            continue;
        }
        let fraction = if replicas(d) == 0 {
            -replicas(rs)
        } else {
            let annotated = template::annotation_int(rs, MAX_REPLICAS)
                .unwrap_or_else(|| int_at(d, "/status/replicas").unwrap_or(0));
            if annotated == 0 {
                0
            } else {
                ((replicas(rs) * target) as f64 / annotated as f64).round() as i64 - replicas(rs)
            }
        };
        let allowed = to_add - added;
        let share = if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        };
        sizes[i] += share;
        added += share;
    }
    if added != to_add
        && let Some(&first) = order.first()
    {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(replicas: i64, surge: Value, unavailable: Value) -> Value {
        json!({"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}})
    }

    fn rs(name: &str, created: &str, want: i64, avail: i64) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"replicas": want}, "status": {"replicas": want, "availableReplicas": avail}})
    }

    #[test]
    fn percentages_round_like_kube() {
        let x = d(10, json!("25%"), json!("25%"));
        assert_eq!((max_surge(&x), max_unavailable(&x)), (3, 2));
        let x = d(1, json!("25%"), json!("25%"));
        assert_eq!((max_surge(&x), max_unavailable(&x)), (1, 0));
        let x = d(3, json!(0), json!(0));
        assert_eq!((max_surge(&x), max_unavailable(&x)), (0, 1));
        let x = d(2, json!(1), json!(5));
        assert_eq!(max_unavailable(&x), 2, "capped at replicas");
        let x = json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}});
        assert_eq!((max_surge(&x), max_unavailable(&x)), (0, 0));
    }

    #[test]
    fn rolling_steps_respect_surge_and_unavailable() {
        // 4 replicas, surge 1, unavailable 0: the new set grows by one, old ones wait for availability.
        let x = d(4, json!(1), json!(0));
        let old = rs("old", "2026-01-01T00:00:00Z", 4, 4);
        let new = rs("new", "2026-01-02T00:00:00Z", 0, 0);
        assert_eq!(new_rs_replicas(&x, &[&old, &new], 0), 1);
        let new = rs("new", "2026-01-02T00:00:00Z", 1, 0);
        assert_eq!(new_rs_replicas(&x, &[&old, &new], 1), 1, "surge used up");
        assert_eq!(old_scale_down_room(&x, &[&old, &new], Some(&new)), 0);
        let new = rs("new", "2026-01-02T00:00:00Z", 1, 1);
        assert_eq!(old_scale_down_room(&x, &[&old, &new], Some(&new)), 1);
        assert_eq!(rolling_scale_down(&x, &[&old, &new], &[&old]), vec![(0, 3)]);
        // Unhealthy old pods go first, within the room.
        let sick = rs("sick", "2026-01-01T00:00:00Z", 3, 1);
        assert_eq!(unhealthy_cleanup(&[&sick], 1), (vec![(0, 2)], 1));
        // Status behind a scale-down (more available than wanted): nothing to clean up.
        let behind = rs("behind", "2026-01-01T00:00:00Z", 3, 4);
        assert_eq!(unhealthy_cleanup(&[&behind], 2), (vec![], 0));
        // Nor a reason to scale down further: 3 (not 4) + 1 available, 3 must stay: one more may go.
        let x = d(4, json!(1), json!(1));
        let new = rs("new", "2026-01-02T00:00:00Z", 2, 1);
        assert_eq!(
            rolling_scale_down(&x, &[&behind, &new], &[&behind]),
            vec![(0, 2)]
        );
    }

    #[test]
    fn proportional_scaling_splits_by_size() {
        // 10 replicas mid-rollout (surge 3): old 8 + new 5 = 13, scaled to 20 → +7 (max annotation 13).
        let x = d(20, json!(3), json!(2));
        let mut old = rs("old", "2026-01-01T00:00:00Z", 8, 8);
        let mut new = rs("new", "2026-01-02T00:00:00Z", 5, 0);
        for r in [&mut old, &mut new] {
            r["metadata"]["annotations"] = json!({MAX_REPLICAS: "13"});
        }
        let sizes = proportional(&x, &[&old, &new]);
        assert_eq!(sizes.iter().sum::<i64>(), 23);
        assert_eq!(sizes, vec![14, 9]);
    }
}
