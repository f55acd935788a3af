//! The status of a ReplicaSet or ReplicationController (kube's `calculateStatus` /
//! `updateReplicaSetStatus`; both kinds have the same status fields).

use serde_json::{Value, json};

use super::MANAGER;
use super::pods::Counts;
use crate::controllers::owners::{self, int_at};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

/// The status kube would write: zero counts other than `replicas` are left out (`omitempty`), a
/// `ReplicaFailure` condition while creating or deleting fails.
fn next_status(rs: &Value, counts: &Counts, failure: Option<&(String, ApiError)>) -> Value {
    let mut status = serde_json::Map::new();
    status.insert("replicas".into(), json!(counts.replicas));
    for (field, n) in [
        ("fullyLabeledReplicas", counts.fully_labeled),
        ("readyReplicas", counts.ready),
        ("availableReplicas", counts.available),
    ] {
        if n != 0 {
            status.insert(field.into(), json!(n));
        }
    }
    if let Some(generation) = int_at(rs, "/metadata/generation") {
        status.insert("observedGeneration".into(), json!(generation));
    }
    let previous: Vec<Value> = rs
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<Value> = previous
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) != Some("ReplicaFailure"))
        .cloned()
        .collect();
    let had_failure = previous
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("ReplicaFailure"));
    match (failure, had_failure) {
        // kube keeps the first failure's condition until a sync succeeds.
        (Some(_), Some(old)) => conditions.push(old.clone()),
        (Some((reason, e)), None) => conditions.push(json!({"type": "ReplicaFailure",
            "status": "True", "reason": reason, "message": e.message,
            "lastTransitionTime": crate::controllers::object::now_rfc3339()})),
        (None, _) => {}
    }
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(status)
}

/// Write the status through `<kind>/status` when it differs from the stored one.
pub async fn write(
    api: &Api,
    kind: Kind,
    rs: &Value,
    counts: &Counts,
    failure: Option<&(String, ApiError)>,
) -> ApiResult<()> {
    let status = next_status(rs, counts, failure);
    if rs.get("status") == Some(&status) {
        return Ok(());
    }
    let mut body = rs.clone();
    body["status"] = status;
    let def = by_kind(kind);
    let ns = owners::str_at(rs, "/metadata/namespace");
    let name = owners::str_at(rs, "/metadata/name");
    match api
        .update(
            def,
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
