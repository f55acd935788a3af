//! The pod side of the Job controller: pods made from the template, which pods count as finished or
//! failed, when a pod finished, and which active pods go first.

use serde_json::{Map, Value, json};

use super::super::owners::{self, Stored, str_at};
use crate::resources::job::TRACKING_FINALIZER;

pub fn phase(pod: &Stored) -> &str {
    str_at(&pod.value, "/status/phase")
}

pub fn terminal(pod: &Stored) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Neither finished nor being deleted (kube's `IsPodActive`).
pub fn active(pod: &Stored) -> bool {
    !pod.deleting() && !terminal(pod)
}

/// Being deleted but not finished (kube's `CountTerminatingPods`).
pub fn terminating(pod: &Stored) -> bool {
    pod.deleting() && !terminal(pod)
}

pub fn ready(pod: &Stored) -> bool {
    pod.value
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

pub fn has_tracking_finalizer(pod: &Value) -> bool {
    pod.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(TRACKING_FINALIZER)))
}

/// `pod` without the tracking finalizer.
pub fn without_tracking_finalizer(pod: &Value) -> Value {
    let mut next = pod.clone();
    if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(f) = meta.get_mut("finalizers").and_then(Value::as_array_mut)
    {
        f.retain(|x| x.as_str() != Some(TRACKING_FINALIZER));
        if f.is_empty() {
            meta.remove("finalizers");
        }
    }
    next
}

/// `pod` with the tracking finalizer (adoption).
pub fn with_tracking_finalizer(pod: &Value) -> Value {
    let mut next = pod.clone();
    if has_tracking_finalizer(&next) {
        return next;
    }
    if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
        let f = meta
            .entry("finalizers")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !f.is_array() {
            *f = Value::Array(Vec::new());
        }
        if let Some(list) = f.as_array_mut() {
            list.push(json!(TRACKING_FINALIZER));
        }
    }
    next
}

/// Whether the pod counts as failed (kube's `isPodFailed`): phase Failed, or, unless only failed pods
/// are replaced (`podReplacementPolicy: Failed`), being deleted before it succeeded.
pub fn failed(pod: &Stored, replace_failed_only: bool) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    !replace_failed_only && pod.deleting() && phase(pod) != "Succeeded"
}

fn millis(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// When the pod finished, in UNIX milliseconds (kube's `getFinishedTime`): the last container's
/// `finishedAt` when all have terminated, else the Ready=False transition, else the deletion time minus
/// its grace period, else the creation time.
pub fn finished_at(pod: &Stored) -> i64 {
    let v = &pod.value;
    if let Some(statuses) = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        let ends: Option<Vec<i64>> = statuses
            .iter()
            .map(|s| millis(s.pointer("/state/terminated/finishedAt")?.as_str()?))
            .collect();
        if let Some(end) = ends.and_then(|e| e.into_iter().max()) {
            return end;
        }
    }
    let ready_false = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("False")
            })
        })
        .and_then(|c| millis(c.get("lastTransitionTime")?.as_str()?));
    if let Some(t) = ready_false {
        return t;
    }
    if let Some(t) = millis(str_at(v, "/metadata/deletionTimestamp")) {
        let grace = v
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        return t - grace.saturating_mul(1000);
    }
    millis(str_at(v, "/metadata/creationTimestamp")).unwrap_or(0)
}

/// The sum of container restarts of the pods still running or pending (kube's
/// `pastBackoffLimitOnFailure` for `restartPolicy: OnFailure`).
pub fn restarts(pods: &[Stored]) -> i64 {
    pods.iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .into_iter()
                .flat_map(move |l| {
                    p.value
                        .pointer(&format!("/status/{l}"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
        })
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .sum()
}

/// A pod for `job` from its template (kube's `GetPodFromTemplate`): the template's labels, annotations,
/// finalizers and spec plus the tracking finalizer, `generateName: <job>-`, the Job as controller.
pub fn from_template(job: &Value) -> Value {
    let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = Map::new();
    meta.insert(
        "generateName".into(),
        format!("{}-", str_at(job, "/metadata/name")).into(),
    );
    meta.insert(
        "namespace".into(),
        str_at(job, "/metadata/namespace").into(),
    );
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}"))
            && !v.is_null()
        {
            meta.insert(field.into(), v.clone());
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([owners::controller_owner_ref(job)]),
    );
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    with_tracking_finalizer(&pod)
}

fn phase_rank(pod: &Stored) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// The `count` active pods to remove first (kube's `controller.ActivePods` order): unscheduled before
/// scheduled, pending before running, not ready before ready, newer first.
pub fn to_remove(pods: &[Stored], count: usize) -> Vec<Stored> {
    let mut ranked: Vec<&Stored> = pods.iter().collect();
    let bound = |p: &Stored| !str_at(&p.value, "/spec/nodeName").is_empty();
    let created = |p: &Stored| millis(str_at(&p.value, "/metadata/creationTimestamp"));
    ranked.sort_by(|a, b| {
        bound(a)
            .cmp(&bound(b))
            .then(phase_rank(a).cmp(&phase_rank(b)))
            .then(ready(a).cmp(&ready(b)))
            .then(created(b).cmp(&created(a)))
    });
    ranked.into_iter().take(count).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Stored {
        Stored {
            value: std::sync::Arc::new(v),
            revision: 1,
        }
    }

    #[test]
    fn finish_time_lookups() {
        let p = pod(
            json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [
                {"state": {"terminated": {"finishedAt": "2026-01-01T00:00:05Z"}}},
                {"state": {"terminated": {"finishedAt": "2026-01-01T00:00:09Z"}}}]}}),
        );
        assert_eq!(finished_at(&p) % 60_000, 9_000);
        // A container still running: the Ready=False transition.
        let p = pod(
            json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [{"state": {"running": {}}}],
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:03Z"}]}}),
        );
        assert_eq!(finished_at(&p) % 60_000, 3_000);
        let p = pod(
            json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z",
            "deletionTimestamp": "2026-01-01T00:00:40Z", "deletionGracePeriodSeconds": 30}}),
        );
        assert_eq!(finished_at(&p) % 60_000, 10_000);
        let p = pod(json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:02Z"}}));
        assert_eq!(finished_at(&p) % 60_000, 2_000);
        assert_eq!(finished_at(&pod(json!({}))), 0);
    }

    #[test]
    fn failures_and_finalizers() {
        let deleting = pod(
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"}}),
        );
        assert!(failed(&deleting, false));
        assert!(!failed(&deleting, true));
        assert!(terminating(&deleting) && !active(&deleting));
        let done = pod(
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Succeeded"}}),
        );
        assert!(!failed(&done, false) && !terminating(&done));
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "ns", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"job-name": "pi"}, "finalizers": ["x"]},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        let p = from_template(&job);
        assert_eq!(p["metadata"]["generateName"], "pi-");
        assert_eq!(
            p["metadata"]["finalizers"],
            json!(["x", TRACKING_FINALIZER])
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert!(has_tracking_finalizer(&p));
        let released = without_tracking_finalizer(&p);
        assert_eq!(released["metadata"]["finalizers"], json!(["x"]));
        let bare =
            without_tracking_finalizer(&json!({"metadata": {"finalizers": [TRACKING_FINALIZER]}}));
        assert!(bare["metadata"].get("finalizers").is_none());
    }

    #[test]
    fn removal_order() {
        let p = |name: &str, node: &str, phase: &str, ready: bool| {
            pod(
                json!({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": node},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}),
            )
        };
        let pods = vec![
            p("running-ready", "n1", "Running", true),
            p("running", "n1", "Running", false),
            p("pending", "n1", "Pending", false),
            p("unbound", "", "Pending", false),
        ];
        let names: Vec<String> = to_remove(&pods, 3)
            .iter()
            .map(|s| s.name().to_string())
            .collect();
        assert_eq!(names, ["unbound", "pending", "running"]);
        let restarted = pod(json!({"status": {"phase": "Running",
            "containerStatuses": [{"restartCount": 2}], "initContainerStatuses": [{"restartCount": 1}]}}));
        let done =
            pod(json!({"status": {"phase": "Failed", "containerStatuses": [{"restartCount": 5}]}}));
        assert_eq!(restarts(&[restarted, done]), 3);
    }
}
