//! The pod side of the ReplicaSet controller: pods made from the template, which surplus pods go first
//! (kube's `ActivePodsWithRanks`), and the replica counts of the status.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::super::owners::{self, Stored, int_at, labels_at, seconds, str_at};

/// Whether the pod still counts (kube's `IsPodActive`): not finished, not being deleted.
pub fn active(pod: &Stored) -> bool {
    !pod.deleting() && !matches!(phase(pod), "Succeeded" | "Failed")
}

pub fn phase(pod: &Stored) -> &str {
    str_at(&pod.value, "/status/phase")
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

pub fn ready(pod: &Stored) -> bool {
    ready_condition(&pod.value).and_then(|c| c.get("status")?.as_str()) == Some("True")
}

/// When the pod became ready (its Ready condition's lastTransitionTime), if it is.
fn ready_since(pod: &Stored) -> Option<i64> {
    if !ready(pod) {
        return None;
    }
    seconds(
        ready_condition(&pod.value)?
            .get("lastTransitionTime")?
            .as_str()?,
    )
}

/// kube's `IsPodAvailable`: ready, and for more than `min_ready` seconds. `Err(at)` when it will be
/// available at UNIX time `at`.
pub fn available(pod: &Stored, min_ready: i64, now: i64) -> Result<bool, i64> {
    if !ready(pod) {
        return Ok(false);
    }
    if min_ready <= 0 {
        return Ok(true);
    }
    match ready_since(pod) {
        Some(since) if since + min_ready < now => Ok(true),
        Some(since) => Err(since + min_ready + 1),
        None => Ok(false),
    }
}

/// A pod for `rs` from its template (kube's `GetPodFromTemplate`): the template's labels, annotations,
/// finalizers and spec, `generateName: <rs>-` and the ReplicaSet as controller.
pub fn from_template(rs: &Value) -> Value {
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = Map::new();
    meta.insert(
        "generateName".into(),
        format!("{}-", str_at(rs, "/metadata/name")).into(),
    );
    meta.insert("namespace".into(), str_at(rs, "/metadata/namespace").into());
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}"))
            && !v.is_null()
        {
            meta.insert(field.into(), v.clone());
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([owners::controller_owner_ref(rs)]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

fn phase_rank(pod: &Stored) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn node(pod: &Stored) -> &str {
    str_at(&pod.value, "/spec/nodeName")
}

fn deletion_cost(pod: &Stored) -> i64 {
    str_at(
        &pod.value,
        "/metadata/annotations/controller.kubernetes.io~1pod-deletion-cost",
    )
    .parse::<i32>()
    .map(i64::from)
    .unwrap_or(0)
}

fn max_restarts(pod: &Stored) -> i64 {
    pod.value
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("restartCount")?.as_i64())
        .max()
        .unwrap_or(0)
}

/// `a` before `b` when `a` is later; a missing time counts as the latest (kube's `afterOrZero`).
fn later_first(a: Option<i64>, b: Option<i64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// The `count` pods to delete first: unassigned before assigned, Pending before Unknown before Running,
/// not ready before ready, lower `pod-deletion-cost` first, more pods of this set on the same node first,
/// ready for less time first, more restarts first, newer first.
pub fn to_delete(pods: &[&Stored], count: usize) -> Vec<Stored> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in pods {
        *per_node.entry(node(pod)).or_default() += 1;
    }
    let colocated = |pod: &Stored| {
        if node(pod).is_empty() {
            0
        } else {
            per_node.get(node(pod)).copied().unwrap_or(0)
        }
    };
    let created = |pod: &Stored| seconds(str_at(&pod.value, "/metadata/creationTimestamp"));
    let mut ranked: Vec<&Stored> = pods.to_vec();
    ranked.sort_by(|a, b| {
        (!node(a).is_empty())
            .cmp(&!node(b).is_empty())
            .then(phase_rank(a).cmp(&phase_rank(b)))
            .then(ready(a).cmp(&ready(b)))
            .then(deletion_cost(a).cmp(&deletion_cost(b)))
            .then(colocated(b).cmp(&colocated(a)))
            .then_with(|| {
                if ready(a) && ready(b) {
                    later_first(ready_since(a), ready_since(b))
                } else {
                    Ordering::Equal
                }
            })
            .then(max_restarts(b).cmp(&max_restarts(a)))
            .then_with(|| later_first(created(a), created(b)))
    });
    ranked.into_iter().take(count).cloned().collect()
}

/// The replica counts of a ReplicaSet's status (kube's `calculateStatus`), over its active pods.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i64,
    pub fully_labeled: i64,
    pub ready: i64,
    pub available: i64,
    /// The earliest UNIX time a ready pod becomes available (minReadySeconds), to look again then.
    pub recheck_at: Option<i64>,
}

pub fn counts(rs: &Value, pods: &[&Stored], now: i64) -> Counts {
    let template_labels = labels_at(rs, "/spec/template/metadata/labels");
    let min_ready = int_at(rs, "/spec/minReadySeconds").unwrap_or(0);
    let mut c = Counts {
        replicas: pods.len() as i64,
        ..Counts::default()
    };
    for pod in pods {
        let labels = pod.labels();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            c.fully_labeled += 1;
        }
        if ready(pod) {
            c.ready += 1;
            match available(pod, min_ready, now) {
                Ok(true) => c.available += 1,
                Ok(false) => {}
                Err(at) => c.recheck_at = Some(c.recheck_at.map_or(at, |t| t.min(at))),
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready_at: Option<&str>, restarts: i64) -> Stored {
        let mut value = json!({"metadata": {"name": name, "uid": name,
            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node}, "status": {"phase": phase,
            "containerStatuses": [{"restartCount": restarts}]}});
        if let Some(at) = ready_at {
            value["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]);
        }
        Stored {
            value: std::sync::Arc::new(value),
            revision: 1,
        }
    }

    fn names(pods: Vec<Stored>) -> Vec<String> {
        pods.iter().map(|p| p.name().to_string()).collect()
    }

    #[test]
    fn surplus_ranking_follows_kube() {
        let unassigned = pod("unassigned", "", "Pending", None, 0);
        let pending = pod("pending", "n1", "Pending", None, 0);
        let unknown = pod("unknown", "n1", "Unknown", None, 0);
        let running = pod("running", "n1", "Running", None, 0);
        let old_ready = pod(
            "old-ready",
            "n2",
            "Running",
            Some("2026-01-01T00:00:00Z"),
            0,
        );
        let new_ready = pod(
            "new-ready",
            "n3",
            "Running",
            Some("2026-01-02T00:00:00Z"),
            0,
        );
        let all = [
            &old_ready,
            &new_ready,
            &running,
            &unknown,
            &pending,
            &unassigned,
        ];
        assert_eq!(
            names(to_delete(&all, 6)),
            [
                "unassigned",
                "pending",
                "unknown",
                "running",
                "new-ready",
                "old-ready"
            ]
        );
        assert_eq!(names(to_delete(&all, 1)), ["unassigned"]);
        // Same readiness: more restarts first, then the pod doubled up on a node.
        let crashy = pod("crashy", "n4", "Running", Some("2026-01-01T00:00:00Z"), 3);
        let calm = pod("calm", "n5", "Running", Some("2026-01-01T00:00:00Z"), 0);
        assert_eq!(names(to_delete(&[&calm, &crashy], 1)), ["crashy"]);
        let twin = pod("twin", "n5", "Running", Some("2026-01-01T00:00:00Z"), 0);
        assert_eq!(
            names(to_delete(&[&crashy, &calm, &twin], 3))[2],
            "crashy",
            "colocated pods go before pods with more restarts"
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some("2026-01-01T00:00:00Z"), 0);
        let t = seconds("2026-01-01T00:00:00Z").expect("time");
        assert_eq!(available(&p, 0, t), Ok(true));
        assert_eq!(available(&p, 10, t + 5), Err(t + 11));
        assert_eq!(available(&p, 10, t + 11), Ok(true));
        let rs = json!({"spec": {"minReadySeconds": 10,
            "template": {"metadata": {"labels": {"app": "web"}}}}});
        let c = counts(&rs, &[&p], t + 5);
        assert_eq!(
            (c.replicas, c.fully_labeled, c.ready, c.available),
            (1, 0, 1, 0)
        );
        assert_eq!(c.recheck_at, Some(t + 11));
    }

    #[test]
    fn pods_from_template_carry_the_owner() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let pod = from_template(&rs);
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["namespace"], "ns");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    }
}
