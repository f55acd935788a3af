//! The status of a PodDisruptionBudget, computed without IO (kube's `trySync`: `getExpectedPodCount`,
//! `getExpectedScale`, `buildDisruptedPodMap`, `countHealthyPods`, `updatePdbStatus` and
//! `UpdateDisruptionAllowedCondition`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::controllers::owners::{Key, Stored, controller_ref, int_at, seconds, str_at};
use crate::resources::workloads::selector_matches;

/// How long an eviction's entry in `status.disruptedPods` keeps its pod out of `currentHealthy` (kube's
/// `DeletionTimeout`): if the pod is still not being deleted after this, the eviction did not happen.
pub const DELETION_TIMEOUT_SECS: i64 = 120;

/// The workloads whose scale is the denominator of a percentage (kube's pod controller finders, without
/// the generic `scale` lookup of custom resources, which skiff does not serve).
pub struct Workloads<'a> {
    pub replicasets: &'a BTreeMap<Key, Stored>,
    pub deployments: &'a BTreeMap<Key, Stored>,
    pub statefulsets: &'a BTreeMap<Key, Stored>,
    pub replicationcontrollers: &'a BTreeMap<Key, Stored>,
}

/// `(uid, spec.replicas)` of the object `name` in `objects` of namespace `ns` if its uid is `uid`.
fn scale_of(objects: &BTreeMap<Key, Stored>, ns: &str, name: &str, uid: &str) -> Option<i64> {
    let obj = objects.get(&(ns.to_string(), name.to_string()))?;
    (obj.uid() == uid).then(|| int_at(&obj.value, "/spec/replicas").unwrap_or(1))
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

impl Workloads<'_> {
    /// The controller of a pod as kube's finders see it: `(uid, scale)`; a ReplicaSet owned by a
    /// Deployment counts as the Deployment. `None` when no served workload controls it.
    fn controller_scale(&self, ns: &str, owner: &Value) -> Option<(String, i64)> {
        let kind = str_at(owner, "/kind");
        let name = str_at(owner, "/name");
        let uid = str_at(owner, "/uid");
        let group = group_of(str_at(owner, "/apiVersion"));
        match (kind, group) {
            ("ReplicaSet", "apps" | "extensions") => {
                let rs = self
                    .replicasets
                    .get(&(ns.to_string(), name.to_string()))
                    .filter(|rs| rs.uid() == uid)?;
                match controller_ref(&rs.value) {
                    Some(d) if str_at(d, "/kind") == "Deployment" => {
                        let d_uid = str_at(d, "/uid");
                        let replicas = scale_of(self.deployments, ns, str_at(d, "/name"), d_uid)?;
                        Some((d_uid.to_string(), replicas))
                    }
                    _ => Some((
                        uid.to_string(),
                        int_at(&rs.value, "/spec/replicas").unwrap_or(1),
                    )),
                }
            }
            ("StatefulSet", "apps") => {
                scale_of(self.statefulsets, ns, name, uid).map(|n| (uid.to_string(), n))
            }
            ("ReplicationController", "") => {
                scale_of(self.replicationcontrollers, ns, name, uid).map(|n| (uid.to_string(), n))
            }
            _ => None,
        }
    }

    /// kube's `getExpectedScale`: the sum of the scales of the pods' controllers, each counted once.
    /// Pods without a controller are returned by name (kube warns about them and goes on); a pod whose
    /// controller is not a served workload is an error.
    pub fn expected_scale(&self, ns: &str, pods: &[&Value]) -> Result<(i64, Vec<String>), String> {
        let mut scales: HashMap<String, i64> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let Some(owner) = controller_ref(pod) else {
                unmanaged.push(str_at(pod, "/metadata/name").to_string());
                continue;
            };
            if scales.contains_key(str_at(owner, "/uid")) {
                continue;
            }
            match self.controller_scale(ns, owner) {
                Some((uid, n)) => {
                    scales.insert(uid, n);
                }
                None => {
                    return Err(format!(
                        "found no controllers for pod {:?}",
                        str_at(pod, "/metadata/name")
                    ));
                }
            }
        }
        Ok((scales.values().sum(), unmanaged))
    }
}

/// `intstr.GetScaledValueFromIntOrPercent(v, total, roundUp=true)`.
pub fn scaled(v: &Value, total: i64) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid value {n}")),
        Value::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok((pct * total + 99).div_euclid(100))
        }
        other => Err(format!("invalid value for IntOrString: {other}")),
    }
}

/// Whether the pod has condition Ready=True (kube's `IsPodReady`).
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// The pods of `pods` (all of the budget's namespace) that its selector picks: none without a
/// selector, all with an empty one (policy/v1's meaning, as kube's controller lists them).
pub fn selected<'a>(pdb: &Value, pods: impl Iterator<Item = &'a Value>) -> Vec<&'a Value> {
    let Some(sel) = pdb.pointer("/spec/selector").filter(|s| s.is_object()) else {
        return Vec::new();
    };
    pods.filter(|p| {
        selector_matches(
            sel,
            p.pointer("/metadata/labels").and_then(Value::as_object),
        )
    })
    .collect()
}

/// What a sync computed: the status to write, the UNIX time to look again (an entry of
/// `disruptedPods` expiring) and the pods without a controller.
#[derive(Debug)]
pub struct Computed {
    pub status: Value,
    pub recheck_at: Option<i64>,
    pub unmanaged: Vec<String>,
}

/// The `DisruptionAllowed` condition kube keeps (`apimeta.SetStatusCondition`: the transition time
/// changes only with the status).
fn condition(
    previous: Option<&Value>,
    allowed: bool,
    reason: &str,
    message: &str,
    generation: i64,
) -> Value {
    let status = if allowed { "True" } else { "False" };
    let old = previous
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
        });
    let transition = old
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(crate::controllers::object::now_rfc3339()));
    json!({"type": "DisruptionAllowed", "status": status, "observedGeneration": generation,
        "lastTransitionTime": transition, "reason": reason, "message": message})
}

/// The other conditions of `previous` with `DisruptionAllowed` replaced by `cond`.
fn conditions_with(previous: Option<&Value>, cond: Value) -> Value {
    let mut out: Vec<Value> = previous
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter(|c| c.get("type").and_then(Value::as_str) != Some("DisruptionAllowed"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    out.push(cond);
    Value::Array(out)
}

/// The `DisruptionAllowed` condition for `allowed` disruptions (kube's
/// `UpdateDisruptionAllowedCondition`), set into `status`; the eviction path uses it too.
pub fn set_allowed_condition(status: &mut Value) {
    let allowed = status
        .get("disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0;
    let generation = int_at(status, "/observedGeneration").unwrap_or(0);
    let reason = if allowed {
        "SufficientPods"
    } else {
        "InsufficientPods"
    };
    let cond = condition(Some(status), allowed, reason, "", generation);
    status["conditions"] = conditions_with(Some(status), cond);
}

/// The status kube's `trySync` writes for `pdb` over the pods of its namespace, at UNIX time `now`.
pub fn compute(
    pdb: &Value,
    pods: &[&Value],
    workloads: &Workloads<'_>,
    now: i64,
) -> Result<Computed, String> {
    let ns = str_at(pdb, "/metadata/namespace");
    let selected = selected(pdb, pods.iter().copied());
    let spec = pdb.get("spec").cloned().unwrap_or(json!({}));
    let present = |f: &str| spec.get(f).filter(|v| !v.is_null());
    let mut unmanaged = Vec::new();
    let (expected, desired) = if let Some(max) = present("maxUnavailable") {
        let (expected, u) = workloads.expected_scale(ns, &selected)?;
        unmanaged = u;
        (expected, (expected - scaled(max, expected)?).max(0))
    } else if let Some(min) = present("minAvailable") {
        if min.is_number() {
            (selected.len() as i64, scaled(min, 0)?)
        } else {
            let (expected, u) = workloads.expected_scale(ns, &selected)?;
            unmanaged = u;
            (expected, scaled(min, expected)?)
        }
    } else {
        (0, 0)
    };

    // kube's buildDisruptedPodMap: keep the entries of selected, not yet deleting pods that are younger
    // than the timeout; look again when the first of them expires.
    let recorded = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object);
    let mut disrupted = Map::new();
    let mut recheck_at: Option<i64> = None;
    for pod in &selected {
        if deleting(pod) {
            continue;
        }
        let name = str_at(pod, "/metadata/name");
        let Some(at) = recorded.and_then(|m| m.get(name)) else {
            continue;
        };
        let Some(t) = at.as_str().and_then(seconds) else {
            continue;
        };
        let expires = t + DELETION_TIMEOUT_SECS;
        if expires > now {
            disrupted.insert(name.to_string(), at.clone());
            recheck_at = Some(recheck_at.map_or(expires, |r| r.min(expires)));
        }
    }
    let healthy = selected
        .iter()
        .filter(|p| !deleting(p) && !disrupted.contains_key(str_at(p, "/metadata/name")))
        .filter(|p| is_ready(p))
        .count() as i64;
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let generation = int_at(pdb, "/metadata/generation").unwrap_or(0);
    let mut status = json!({"observedGeneration": generation, "disruptionsAllowed": allowed,
        "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected});
    if !disrupted.is_empty() {
        status["disruptedPods"] = Value::Object(disrupted);
    }
    let previous = pdb.get("status");
    let reason = if allowed > 0 {
        "SufficientPods"
    } else {
        "InsufficientPods"
    };
    let cond = condition(previous, allowed > 0, reason, "", generation);
    status["conditions"] = conditions_with(previous, cond);
    Ok(Computed {
        status,
        recheck_at,
        unmanaged,
    })
}

/// kube's `failSafe`: when the status cannot be computed, no disruption is allowed and the condition
/// says why (reason `SyncFailed`).
pub fn fail_safe(pdb: &Value, error: &str) -> Value {
    let mut status = pdb
        .get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(crate::resources::pdb::empty_status);
    status["disruptionsAllowed"] = json!(0);
    let generation = int_at(&status, "/observedGeneration").unwrap_or(0);
    let cond = condition(Some(&status), false, "SyncFailed", error, generation);
    status["conditions"] = conditions_with(Some(&status), cond);
    status
}

#[cfg(test)]
mod tests;
