//! The scheduler's writes: binding a pod to a node, and reporting that it cannot be placed. Both run as
//! their own tasks so the scheduling loop never waits for a commit.

use std::sync::Arc;

use serde_json::Value;

use crate::controllers::events::{self, EventType, PodRef};
use crate::controllers::object;
use crate::store::{Revision, Store, StoreError};

pub const COMPONENT: &str = "default-scheduler";
const ATTEMPTS: usize = 5;

#[derive(Debug)]
pub enum Outcome {
    /// The pod is bound to `node`; the write has `revision`.
    Bound {
        key: String,
        node: String,
        revision: Revision,
    },
    /// The pod went away, got bound by someone else, or is being deleted: nothing to do.
    Lost { key: String },
    /// The write failed; try again later.
    Failed { key: String, error: String },
    /// Every delayed claim of the pod now names the node chosen for it: `claims` holds each claim
    /// (`namespace/name`) with the revision at which it did; older views of the claim are stale.
    VolumesRequested {
        key: String,
        claims: Vec<(String, Revision)>,
    },
    /// Writing the selected node onto a claim failed; place the pod again later.
    VolumesFailed { key: String, error: String },
}

fn pod_ref(value: &Value, revision: Revision) -> PodRef {
    let field = |f: &str| object::meta_str(value, f).unwrap_or_default().to_string();
    PodRef {
        namespace: field("namespace"),
        name: field("name"),
        uid: field("uid"),
        resource_version: revision.to_string(),
    }
}

fn still_unbound(value: &Value) -> bool {
    let node = value
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let deleting = value
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null());
    node.is_empty() && !deleting
}

/// Re-read a pod after a conflict; `None` if it is gone, unreadable, or no longer waiting for a node.
async fn reread(store: &dyn Store, key: &str) -> Result<Option<(Revision, Value)>, StoreError> {
    let Some(kv) = store.get(key).await? else {
        return Ok(None);
    };
    let Ok(value) = serde_json::from_slice::<Value>(&kv.value) else {
        return Ok(None);
    };
    Ok(still_unbound(&value).then_some((kv.mod_revision, value)))
}

/// Bind the pod stored at `key` (last seen at `revision` as `value`) to `node`, then record `Scheduled`.
pub async fn bind(
    store: Arc<dyn Store>,
    key: String,
    node: String,
    mut revision: Revision,
    mut value: Value,
) -> Outcome {
    for _ in 0..ATTEMPTS {
        let mut updated = value.clone();
        let shaped = object::child(&mut updated, "spec")
            .map(|spec| spec.insert("nodeName".into(), node.clone().into()));
        if shaped.is_none()
            || object::set_condition(&mut updated, "PodScheduled", "True", None, None).is_none()
        {
            return Outcome::Failed {
                key,
                error: "stored pod has an unexpected shape".into(),
            };
        }
        object::strip_resource_version(&mut updated);
        let bytes = match serde_json::to_vec(&updated) {
            Ok(bytes) => bytes,
            Err(err) => {
                return Outcome::Failed {
                    key,
                    error: err.to_string(),
                };
            }
        };
        match store.update(&key, bytes, revision).await {
            Ok(new_revision) => {
                let pod = pod_ref(&updated, new_revision);
                let message = format!(
                    "Successfully assigned {}/{} to {node}",
                    pod.namespace, pod.name
                );
                tracing::info!(pod = %key, node = %node, "scheduled");
                if let Err(err) = events::record(
                    &*store,
                    COMPONENT,
                    &pod,
                    EventType::Normal,
                    "Scheduled",
                    &message,
                )
                .await
                {
                    tracing::warn!(pod = %key, error = %err, "failed to record Scheduled event");
                }
                return Outcome::Bound {
                    key,
                    node,
                    revision: new_revision,
                };
            }
            Err(StoreError::Conflict { .. }) => match reread(&*store, &key).await {
                Ok(Some((r, v))) => (revision, value) = (r, v),
                Ok(None) => return Outcome::Lost { key },
                Err(err) => {
                    return Outcome::Failed {
                        key,
                        error: err.to_string(),
                    };
                }
            },
            Err(StoreError::NotFound(_)) => return Outcome::Lost { key },
            Err(err) => {
                return Outcome::Failed {
                    key,
                    error: err.to_string(),
                };
            }
        }
    }
    Outcome::Failed {
        key,
        error: "too many conflicting updates".into(),
    }
}

/// Set `PodScheduled=False` (reason Unschedulable) and record a `FailedScheduling` warning.
pub async fn report_unschedulable(
    store: Arc<dyn Store>,
    key: String,
    revision: Revision,
    value: Value,
    message: String,
) {
    report_failure(store, key, revision, value, "Unschedulable", message).await
}

/// Set `PodScheduled=False` with `reason` (`Unschedulable`, or `SchedulerError` when placing it failed for
/// another cause) and record a `FailedScheduling` warning.
pub async fn report_failure(
    store: Arc<dyn Store>,
    key: String,
    mut revision: Revision,
    mut value: Value,
    reason: &'static str,
    message: String,
) {
    for _ in 0..ATTEMPTS {
        let mut updated = value.clone();
        if object::set_condition(
            &mut updated,
            "PodScheduled",
            "False",
            Some(reason),
            Some(&message),
        )
        .is_none()
        {
            tracing::warn!(pod = %key, "stored pod has an unexpected status shape");
            return;
        }
        object::strip_resource_version(&mut updated);
        let Ok(bytes) = serde_json::to_vec(&updated) else {
            return;
        };
        match store.update(&key, bytes, revision).await {
            Ok(new_revision) => {
                tracing::info!(pod = %key, %message, "unschedulable");
                let pod = pod_ref(&updated, new_revision);
                if let Err(err) = events::record(
                    &*store,
                    COMPONENT,
                    &pod,
                    EventType::Warning,
                    "FailedScheduling",
                    &message,
                )
                .await
                {
                    tracing::warn!(pod = %key, error = %err, "failed to record FailedScheduling event");
                }
                return;
            }
            Err(StoreError::Conflict { .. }) => match reread(&*store, &key).await {
                Ok(Some((r, v))) => (revision, value) = (r, v),
                _ => return,
            },
            Err(err) => {
                tracing::warn!(pod = %key, error = %err, "failed to report unschedulable pod");
                return;
            }
        }
    }
}
