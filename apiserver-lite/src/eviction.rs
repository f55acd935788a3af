//! `pods/eviction` (policy/v1 and policy/v1beta1 `Eviction`): a graceful delete of the pod that honours the
//! Eviction's `deleteOptions` (grace period, preconditions, dryRun) and the pod's PodDisruptionBudget, as
//! kube-apiserver's `EvictionREST`. `kubectl drain` finds this subresource in `/api/v1` discovery
//! (`pods/eviction`, group `policy`, kind `Eviction`), evicts through it and retries a 429 every 5 s.
//!
//! Evicting a pod that is already terminating succeeds without changing it; terminal and pending pods are
//! deleted without looking at budgets. Otherwise the budgets of the namespace that select the pod decide
//! (see [`budget`]): none → delete; more than one → 500; one → the pod is deleted only if the budget
//! allows a disruption, which is taken in one optimistic-concurrency write of the budget's status (the
//! pod goes into `status.disruptedPods` so that the disruption controller stops counting it).

mod budget;

use serde_json::{Value, json};

use crate::handlers::{Api, DeleteOpts, Query};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult, FieldError};

/// Evict `ns/name` as the Eviction `body` (already decoded from JSON, YAML or protobuf) asks.
/// `dry_run` comes from the query; the Eviction's own `deleteOptions.dryRun` counts too.
pub async fn evict(
    api: &Api,
    ns: &str,
    name: &str,
    body: &Value,
    query: &Query,
    dry_run: bool,
) -> ApiResult<Value> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != "Eviction" {
        return Err(ApiError::bad_request(format!(
            "expected an Eviction, got kind {kind:?}"
        )));
    }
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !matches!(api_version, "" | "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "Eviction in apiVersion {api_version:?}: policy/v1 or policy/v1beta1 expected"
        )));
    }
    let body_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(ApiError::invalid(
            "policy",
            "Eviction",
            body_name,
            &[FieldError::invalid(
                "metadata.name",
                &json!(body_name),
                &format!("name in URL does not match name in Eviction object: {name}"),
            )],
        ));
    }
    if let Some(body_ns) = body.pointer("/metadata/namespace").and_then(Value::as_str)
        && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the Eviction ({body_ns}) does not match the namespace of the request ({ns})"
        )));
    }
    let delete_options = body.get("deleteOptions").cloned().unwrap_or(Value::Null);
    let options_bytes = match &delete_options {
        Value::Null => Vec::new(),
        v => serde_json::to_vec(v).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let opts = DeleteOpts::from_request(query, &options_bytes)?;
    let dry_run = dry_run
        || delete_options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("All")));

    let pods = by_kind(Kind::Pod);
    for _ in 0..RETRIES {
        let pod = api.get(pods, Some(ns), name).await?;
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            // Already going away: nothing to do (kube-apiserver answers success as well).
            return Ok(success());
        }
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !matches!(phase, "Succeeded" | "Failed" | "Pending") {
            return budget::evict_guarded(api, ns, name, &pod, &opts, dry_run).await;
        }
        // kube's `canIgnorePDB`: a terminal pod has already been disrupted, a pending one is not
        // counted as healthy. A pending pod is deleted only if it is still the version read, so that it
        // cannot turn Running and Ready in between unguarded.
        let mut guarded = opts.clone();
        let add_precondition = phase == "Pending" && guarded.resource_version.is_none();
        if add_precondition {
            guarded.resource_version = pod
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        match api.delete(pods, Some(ns), name, &guarded, dry_run).await {
            Ok(_) => return Ok(success()),
            Err(e) if e.code == 409 && add_precondition => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::new(
        504,
        "Timeout",
        format!("couldn't evict pod {name:?} due to conflicts"),
    ))
}

/// How often a step that lost an optimistic-concurrency race is tried again.
const RETRIES: usize = 5;

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}
