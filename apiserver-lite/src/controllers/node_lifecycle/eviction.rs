//! Taint-based eviction (kube-controller-manager's `NoExecuteTaintManager`): a pod on a node with a
//! `NoExecute` taint it does not tolerate is deleted at once; one it tolerates for `tolerationSeconds`
//! (the DefaultTolerationSeconds admission gives every pod 300 s for `not-ready`/`unreachable`) is deleted
//! when that time, counted from the taint's `timeAdded`, runs out. Meanwhile pods on a node that is not
//! ready are marked Ready=False, as the node lifecycle controller does.
//!
//! As kube's taint manager, the pod is deleted through the REST delete with its own grace period (event
//! `TaintManagerEviction`): it turns Terminating, a ReplicaSet replaces it at once (terminating pods are not
//! active), a StatefulSet waits until it is really gone (at most one pod per identity). The node's agent
//! finishes the deletion when it comes back; if it never does, deleting the Node (or the `out-of-service`
//! taint) lets the pod garbage collector (`Api::finalize_pass`) force-delete it.

use std::collections::HashMap;

use serde_json::Value;

use super::super::events::{self, EventType, ObjectRef};
use super::super::{PODS_PREFIX, object};
use super::taints::{NOT_READY, NoExecute, UNREACHABLE};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::store::{Store, StoreError};

/// The event source of evictions (kube's taint manager reports as the node controller).
const COMPONENT: &str = "taint-eviction-controller";

/// kube's `Toleration.ToleratesTaint`, for a `NoExecute` taint.
fn tolerates(toleration: &Value, taint: &NoExecute) -> bool {
    let field = |name: &str| toleration.get(name).and_then(Value::as_str).unwrap_or("");
    if !field("effect").is_empty() && field("effect") != "NoExecute" {
        return false;
    }
    if !field("key").is_empty() && field("key") != taint.key {
        return false;
    }
    match toleration
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("Equal")
    {
        "Exists" => true,
        "Equal" | "" => field("value") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// When the pod must go: `Some(now)`-or-earlier for an untolerated taint, `None` if it may stay forever.
pub fn deadline(
    pod: &Value,
    taints: &[NoExecute],
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    let tolerations = pod
        .get("spec")
        .and_then(|s| s.get("tolerations"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut earliest: Option<jiff::Timestamp> = None;
    for taint in taints {
        let matching: Vec<&Value> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        // The shortest bounded toleration wins; only unbounded ones let the pod stay forever.
        let Some(seconds) = matching
            .iter()
            .filter_map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
            .min()
        else {
            continue;
        };
        let added = taint.added.unwrap_or(now);
        let due = added
            .checked_add(jiff::SignedDuration::from_secs(seconds.max(0)))
            .unwrap_or(added);
        earliest = Some(earliest.map_or(due, |e| e.min(due)));
    }
    earliest
}

fn finished(pod: &Value) -> bool {
    let phase = pod
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str);
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Delete `pod` gracefully (its own grace period; the uid must still match) and record kube's event.
async fn evict(api: &Api, pod: &Value, node: &str) {
    let meta = |k: &str| {
        pod.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (ns, name, uid) = (meta("namespace"), meta("name"), meta("uid"));
    let opts = DeleteOpts {
        uid: Some(uid.clone()),
        ..DeleteOpts::default()
    };
    // As kube's taint manager: the DisruptionTarget condition first, then the delete.
    let why = crate::eviction::Disruption {
        manager: "taint-eviction-controller",
        reason: "DeletionByTaintManager",
        message: "Taint manager: deleting due to NoExecute taint",
        fail: false,
    };
    let marked = crate::eviction::add_disruption_target(api, &ns, &name, &opts, &why).await;
    if let Err(err) = &marked
        && err.code != 404
    {
        tracing::warn!(pod = %format!("{ns}/{name}"), error = %err.message,
            "taint eviction: failed to add the DisruptionTarget condition");
    }
    match api
        .delete(by_kind(Kind::Pod), Some(&ns), &name, &opts, false)
        .await
    {
        Ok(_) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), node, "taint eviction: pod marked for deletion");
            let about = ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: ns.clone(),
                name: name.clone(),
                uid,
                resource_version: meta("resourceVersion"),
            };
            let message = format!("Marking for deletion Pod {ns}/{name}");
            let store: &dyn Store = api.store.as_ref();
            if let Err(err) = events::record_about(
                store,
                COMPONENT,
                &about,
                EventType::Normal,
                "TaintManagerEviction",
                &message,
            )
            .await
            {
                tracing::debug!(error = %err, "taint eviction: event not recorded");
            }
        }
        // Gone or changed meanwhile (another uid): the next sweep sees the current state.
        Err(err) if matches!(err.code, 404 | 409) => {}
        Err(err) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %err.message, "taint eviction failed")
        }
    }
}

/// Evict or mark the pods bound to the tainted nodes (node name → its `NoExecute` taints).
pub async fn sweep(api: &Api, tainted: &[(String, Vec<NoExecute>)]) {
    let store: &dyn Store = api.store.as_ref();
    let by_node: HashMap<&str, &[NoExecute]> = tainted
        .iter()
        .map(|(name, taints)| (name.as_str(), taints.as_slice()))
        .collect();
    let pods = match store.list(PODS_PREFIX).await {
        Ok((pods, _)) => pods,
        Err(err) => {
            tracing::warn!(error = %err, "taint eviction: failed to list pods");
            return;
        }
    };
    let now = jiff::Timestamp::now();
    for kv in pods {
        let Ok(pod) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let node = pod
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str);
        let Some(taints) = node.and_then(|n| by_node.get(n)) else {
            continue;
        };
        if finished(&pod) || pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        if deadline(&pod, taints, now).is_some_and(|due| due <= now) {
            evict(api, &pod, node.unwrap_or_default()).await;
            continue;
        }
        let not_ready = taints
            .iter()
            .any(|t| t.key == UNREACHABLE || t.key == NOT_READY);
        if not_ready {
            mark_not_ready(store, &kv.key, kv.mod_revision, pod).await;
        }
    }
}

async fn mark_not_ready(store: &dyn Store, key: &str, revision: i64, mut pod: Value) {
    let ready = pod
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    if ready == Some("False") {
        return;
    }
    if object::set_condition(&mut pod, "Ready", "False", Some("NodeNotReady"), None).is_none() {
        return;
    }
    object::strip_resource_version(&mut pod);
    let Ok(bytes) = serde_json::to_vec(&pod) else {
        return;
    };
    match store.update(key, bytes, revision).await {
        Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
        Err(err) => tracing::warn!(pod = %key, error = %err, "failed to mark pod not ready"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, added: &str) -> NoExecute {
        NoExecute {
            key: key.into(),
            value: None,
            added: added.parse().ok(),
        }
    }

    #[test]
    fn deadlines_follow_tolerations() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().expect("ts");
        let taints = [taint(UNREACHABLE, "2026-01-01T00:00:00Z")];
        let defaulted = json!({"spec": {"tolerations": [
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]}});
        assert_eq!(
            deadline(&defaulted, &taints, now),
            "2026-01-01T00:05:00Z".parse().ok()
        );
        assert_eq!(deadline(&json!({"spec": {}}), &taints, now), Some(now));
        let forever = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        assert_eq!(deadline(&forever, &taints, now), None);
        let other = json!({"spec": {"tolerations": [{"key": "x", "operator": "Exists"}]}});
        assert_eq!(deadline(&other, &taints, now), Some(now));
        let no_schedule_only = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}]}});
        assert_eq!(deadline(&no_schedule_only, &taints, now), Some(now));
        let negative = json!({"spec": {"tolerations": [
            {"operator": "Exists", "tolerationSeconds": -5}, {"operator": "Exists"}]}});
        assert_eq!(
            deadline(&negative, &taints, now),
            "2026-01-01T00:00:00Z".parse().ok()
        );
    }
}
