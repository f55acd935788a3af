//! The status of a StatefulSet (kube's `updateStatefulSetStatus` / `completeRollingUpdate`).

use serde_json::{Map, Value, json};

use super::MANAGER;
use super::pods::Counts;
use crate::controllers::owners::{self, int_at};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

/// The revisions the status names: `(current, update)`. The current one becomes the update one once
/// every pod is updated and Ready (kube does this for `RollingUpdate`; skiff for `OnDelete` too).
pub fn revisions(set: &Value, update: &str, counts: &Counts) -> (String, String) {
    let stored = owners::str_at(set, "/status/currentRevision");
    let want = int_at(set, "/spec/replicas").unwrap_or(1);
    let done = counts.updated == want && counts.replicas == want && counts.ready == want;
    let current = if stored.is_empty() || done {
        update.to_string()
    } else {
        stored.to_string()
    };
    (current, update.to_string())
}

/// The status kube writes: `replicas` and `availableReplicas` always, the other counters when not zero.
pub fn next_status(set: &Value, counts: &Counts, current: &str, update: &str) -> Value {
    let mut status = Map::new();
    if let Some(generation) = int_at(set, "/metadata/generation") {
        status.insert("observedGeneration".into(), json!(generation));
    }
    status.insert("replicas".into(), json!(counts.replicas));
    // The current pods are the updated ones once the revisions are the same.
    let current_replicas = if current == update {
        counts.updated
    } else {
        counts.current
    };
    for (field, n) in [
        ("readyReplicas", counts.ready),
        ("currentReplicas", current_replicas),
        ("updatedReplicas", counts.updated),
    ] {
        if n != 0 {
            status.insert(field.into(), json!(n));
        }
    }
    status.insert("currentRevision".into(), json!(current));
    status.insert("updateRevision".into(), json!(update));
    status.insert(
        "collisionCount".into(),
        json!(int_at(set, "/status/collisionCount").unwrap_or(0)),
    );
    status.insert("availableReplicas".into(), json!(counts.available));
    if let Some(conditions) = set
        .pointer("/status/conditions")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        status.insert("conditions".into(), conditions.clone());
    }
    Value::Object(status)
}

/// Write the status through `statefulsets/status` when it differs from the stored one.
pub async fn write(api: &Api, set: &Value, status: Value) -> ApiResult<()> {
    if set.get("status") == Some(&status) {
        return Ok(());
    }
    let mut body = set.clone();
    body["status"] = status;
    let ns = owners::str_at(set, "/metadata/namespace");
    let name = owners::str_at(set, "/metadata/name");
    match api
        .update(
            by_kind(Kind::StatefulSet),
            Some(ns),
            name,
            Some("status"),
            body,
            &[],
            &crate::controllers::object::write_opts(MANAGER),
        )
        .await
    {
        // A newer version is on its way through the watch; that sync writes the status then.
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_revision_follows_a_complete_rollout() {
        let set = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"currentRevision": "web-a", "collisionCount": 0}});
        let halfway = Counts {
            replicas: 2,
            ready: 2,
            available: 2,
            current: 1,
            updated: 1,
            recheck_at: None,
        };
        assert_eq!(
            revisions(&set, "web-b", &halfway),
            ("web-a".to_string(), "web-b".to_string())
        );
        let done = Counts {
            current: 0,
            updated: 2,
            ..halfway.clone()
        };
        let (current, update) = revisions(&set, "web-b", &done);
        assert_eq!(current, "web-b");
        let status = next_status(&set, &done, &current, &update);
        assert_eq!(
            status,
            json!({"observedGeneration": 3, "replicas": 2, "readyReplicas": 2,
                "currentReplicas": 2, "updatedReplicas": 2, "currentRevision": "web-b",
                "updateRevision": "web-b", "collisionCount": 0, "availableReplicas": 2})
        );
        // A new set starts at the update revision.
        let fresh = json!({"spec": {"replicas": 1}});
        assert_eq!(revisions(&fresh, "web-a", &Counts::default()).0, "web-a");
    }
}
