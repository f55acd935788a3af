//! The pods of a StatefulSet: their stable identity (`<set>-<ordinal>`, hostname and subdomain, the
//! `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index` labels), the revision they were
//! made from (`controller-revision-hash` = `<set>-<template hash>`), and the counts of the status.

use serde_json::{Map, Value, json};

use super::plan::PodState;
use crate::controllers::deployment::template::pod_template_hash;
use crate::controllers::owners::{self, Stored, int_at, str_at};
use crate::controllers::replicaset::pods::{available, phase, ready};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The ordinal of `pod` in the set `set` (kube's `getParentNameAndOrdinal`): `<set>-<n>`, `n` a
/// non-negative decimal without leading zeros.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i64> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    let ordinal: i64 = n.parse().ok()?;
    (ordinal >= 0 && ordinal.to_string() == n).then_some(ordinal)
}

/// The revision name of a template (kube names ControllerRevisions `<set>-<hash>`; skiff keeps no
/// ControllerRevision objects, only the name).
pub fn revision_name(set: &Value, template: &Value) -> String {
    // 0 is no collision: the revision of a new set stays the same once its status is written.
    let collisions = int_at(set, "/status/collisionCount").filter(|n| *n != 0);
    format!(
        "{}-{}",
        str_at(set, "/metadata/name"),
        pod_template_hash(template, collisions)
    )
}

/// `[start, start + replicas)`, `start` being `spec.ordinals.start` (0 when unset).
pub fn ordinal_range(set: &Value) -> (i64, i64) {
    let start = int_at(set, "/spec/ordinals/start").unwrap_or(0).max(0);
    let replicas = int_at(set, "/spec/replicas").unwrap_or(1).max(0);
    (start, replicas)
}

/// The pod of `ordinal` made from `template` at `revision` (kube's `newVersionedStatefulSetPod`).
pub fn new_pod(set: &Value, template: &Value, revision: &str, ordinal: i64) -> Value {
    let set_name = str_at(set, "/metadata/name");
    let name = format!("{set_name}-{ordinal}");
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    meta.insert(
        "namespace".into(),
        json!(str_at(set, "/metadata/namespace")),
    );
    for field in ["annotations", "finalizers"] {
        if let Some(v) = template
            .pointer(&format!("/metadata/{field}"))
            .filter(|v| !v.is_null())
        {
            meta.insert(field.into(), v.clone());
        }
    }
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert(
        "ownerReferences".into(),
        json!([owners::controller_owner_ref(set)]),
    );
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    spec["hostname"] = json!(name);
    let service = str_at(set, "/spec/serviceName");
    if !service.is_empty() {
        spec["subdomain"] = json!(service);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// kube's `isRunningAndReady` and, with `minReadySeconds`, `isRunningAndAvailable`. `Err(at)` when the
/// pod becomes available at UNIX time `at`.
pub fn healthy(pod: &Stored, min_ready: i64, now: i64) -> Result<bool, i64> {
    if phase(pod) != "Running" || !ready(pod) {
        return Ok(false);
    }
    available(pod, min_ready, now)
}

/// What the plan needs of `pod`, a pod of the set `set` at `ordinal`.
pub fn state(pod: &Stored, ordinal: i64, min_ready: i64, now: i64) -> PodState {
    PodState {
        ordinal,
        name: pod.name().to_string(),
        revision: pod.labels().remove(REVISION_LABEL).unwrap_or_default(),
        terminating: pod.deleting(),
        finished: matches!(phase(pod), "Failed" | "Succeeded"),
        healthy: healthy(pod, min_ready, now).unwrap_or(false),
    }
}

/// The counters of a StatefulSet's status (kube's `updateStatefulSet` status computation).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub current: i64,
    pub updated: i64,
    /// When a ready pod becomes available (minReadySeconds), to look again then.
    pub recheck_at: Option<i64>,
}

pub fn counts(
    pods: &[&Stored],
    current_revision: &str,
    update_revision: &str,
    min_ready: i64,
    now: i64,
) -> Counts {
    let mut c = Counts::default();
    for pod in pods {
        c.replicas += 1;
        if phase(pod) == "Running" && ready(pod) {
            c.ready += 1;
            match available(pod, min_ready, now) {
                Ok(true) => c.available += 1,
                Ok(false) => {}
                Err(at) => c.recheck_at = Some(c.recheck_at.map_or(at, |r| r.min(at))),
            }
        }
        if !pod.deleting() {
            let revision = pod.labels().remove(REVISION_LABEL).unwrap_or_default();
            if revision == current_revision {
                c.current += 1;
            }
            if revision == update_revision {
                c.updated += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"replicas": 2, "serviceName": "nginx", "ordinals": {"start": 3},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    }

    #[test]
    fn ordinals_parse_only_the_sets_own_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web--1"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webs-1"), None);
        assert_eq!(ordinal_of("web-1", "web-1-2"), Some(2));
        assert_eq!(ordinal_range(&set()), (3, 2));
    }

    #[test]
    fn pods_carry_their_identity_and_revision() {
        let s = set();
        let template = s["spec"]["template"].clone();
        let rev = revision_name(&s, &template);
        assert!(rev.starts_with("web-") && rev.len() > 4, "{rev}");
        let pod = new_pod(&s, &template, &rev, 3);
        assert_eq!(pod["metadata"]["name"], "web-3");
        assert_eq!(pod["metadata"]["labels"][POD_NAME_LABEL], "web-3");
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "3");
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], rev.as_str());
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["spec"]["hostname"], "web-3");
        assert_eq!(pod["spec"]["subdomain"], "nginx");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        // Another template is another revision; the collision count changes it too.
        let mut other = template.clone();
        other["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_ne!(revision_name(&s, &other), rev);
        let mut written = s.clone();
        written["status"] = json!({"collisionCount": 0});
        assert_eq!(revision_name(&written, &template), rev);
        let mut collided = s.clone();
        collided["status"] = json!({"collisionCount": 1});
        assert_ne!(revision_name(&collided, &template), rev);
    }

    #[test]
    fn counts_follow_revisions_and_readiness() {
        let mk = |name: &str, rev: &str, ready: bool| Stored {
            value: std::sync::Arc::new(
                json!({"metadata": {"name": name, "labels": {REVISION_LABEL: rev}},
                "status": {"phase": "Running", "conditions": [{"type": "Ready",
                    "status": if ready { "True" } else { "False" }}]}}),
            ),
            revision: 1,
        };
        let pods = [mk("web-0", "a", true), mk("web-1", "b", false)];
        let refs: Vec<&Stored> = pods.iter().collect();
        let c = counts(&refs, "a", "b", 0, 0);
        assert_eq!((c.replicas, c.ready, c.available), (2, 1, 1));
        assert_eq!((c.current, c.updated), (1, 1));
        let st = state(&pods[1], 1, 0, 0);
        assert!(!st.healthy && !st.finished && st.revision == "b");
    }
}
