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

use crate::handlers::{Api, DeleteOpts, Query, WriteOpts};
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
        match delete_disrupted(api, ns, name, &guarded, dry_run).await {
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

/// Why a pod is deleted for a disruption: the `DisruptionTarget` condition kube writes to its status first
/// (so that a Job's pod failure policy can tell such failures apart).
pub struct Disruption<'a> {
    /// The field manager of the status write.
    pub manager: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    /// Also turn a pod that has not finished `Failed` (the pod GC does; the condition then only goes to
    /// such pods).
    pub fail: bool,
}

/// The eviction API's disruption.
const EVICTION: Disruption<'static> = Disruption {
    manager: "kube-apiserver",
    reason: "EvictionByEvictionAPI",
    message: "Eviction API: evicting",
    fail: false,
};

/// Delete an evicted pod as kube's `addConditionAndDeletePod`: first the pod's status gets the
/// `DisruptionTarget` condition (unless dry run), then the delete (its resourceVersion precondition, if
/// any, moved to the version the condition made).
async fn delete_disrupted(
    api: &Api,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
    dry_run: bool,
) -> ApiResult<Value> {
    let mut opts = opts.clone();
    if !dry_run {
        let written = add_disruption_target(api, ns, name, &opts, &EVICTION).await?;
        if opts.resource_version.is_some() {
            opts.resource_version = written
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    api.delete(by_kind(Kind::Pod), Some(ns), name, &opts, dry_run)
        .await
}

/// Write the pod condition `DisruptionTarget=True` of `why` to `ns/name`'s status, checking `opts`' uid
/// and resourceVersion preconditions against the pod as a delete would. Returns the pod as written (or
/// as read, when there was nothing to write).
pub async fn add_disruption_target(
    api: &Api,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
    why: &Disruption<'_>,
) -> ApiResult<Value> {
    let pods = by_kind(Kind::Pod);
    for _ in 0..RETRIES {
        let mut pod = api.get(pods, Some(ns), name).await?;
        let field = |p: &str| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (uid, rv) = (field("/metadata/uid"), field("/metadata/resourceVersion"));
        if opts.uid.as_ref().is_some_and(|u| *u != uid)
            || opts.resource_version.as_ref().is_some_and(|r| *r != rv)
        {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if !set_condition(&mut pod, why) {
            return Ok(pod);
        }
        let write = WriteOpts {
            dry_run: false,
            field_validation: crate::strict::FieldValidation::Ignore,
            field_manager: Some(why.manager.into()),
            apply: false,
        };
        match api
            .update(pods, Some(ns), name, Some("status"), pod, &[], &write)
            .await
        {
            Ok((written, _, _)) => return Ok(written),
            Err(e) if e.code == 409 && opts.resource_version.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified("", "pods", name))
}

/// kube's `UpdatePodCondition` (the transition time moves only when the status changes), and with
/// `why.fail` the phase `Failed`. Whether anything changed.
fn set_condition(pod: &mut Value, why: &Disruption<'_>) -> bool {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut condition = json!({"type": "DisruptionTarget", "status": "True", "reason": why.reason,
        "message": why.message, "lastTransitionTime": now});
    let Some(status) = pod
        .as_object_mut()
        .map(|o| o.entry("status").or_insert_with(|| json!({})))
    else {
        return false;
    };
    if !status.is_object() {
        *status = json!({});
    }
    if why.fail {
        if matches!(status["phase"].as_str(), Some("Succeeded" | "Failed")) {
            return false;
        }
        status["phase"] = json!("Failed");
    }
    let conditions = &mut status["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return false;
    };
    match list.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
        Some(old) => {
            let same = ["status", "reason", "message"]
                .iter()
                .all(|k| old[*k] == condition[*k]);
            if same && !why.fail {
                return false;
            }
            if old["status"] == "True" {
                condition["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = condition;
        }
        None => list.push(condition),
    }
    true
}

/// How often a step that lost an optimistic-concurrency race is tried again.
const RETRIES: usize = 5;

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}
