//! kube-apiserver's LimitRanger admission plugin, on create of pods and PersistentVolumeClaims (kube
//! skips pod updates: containers cannot change; skiff also skips claim updates).
//!
//! Every LimitRange of the namespace applies, in name order: first each one's container defaults
//! (mutating phase, recorded in the `kubernetes.io/limit-ranger` annotation), then each one's min /
//! max / ratio checks; the first LimitRange a pod or claim breaks refuses it with 403 Forbidden and all
//! that LimitRange's violations. Defaulted pods are checked as kube's pod validation (which runs between
//! the two phases) would check them: no request above its limit.

use serde_json::{Value, json};

use super::checks;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind, pod};
use crate::status::{ApiError, ApiResult, FieldError};

/// The LimitRanges of namespace `ns`: from the server's cache, else one store list.
async fn limit_ranges(api: &Api, ns: &str) -> ApiResult<Vec<Value>> {
    let prefix = by_kind(Kind::LimitRange).prefix(Some(ns));
    if let Some(cached) = api
        .caches
        .as_ref()
        .and_then(|c| c.limit_ranges.list(&prefix))
    {
        return Ok(cached.iter().map(|p| p.value.clone()).collect());
    }
    let (kvs, _) = api.store.list(&prefix).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// kube's admission Forbidden: `<plural> "<name>" is forbidden: <violations>`.
fn forbidden(plural: &str, obj: &Value, errs: &[String]) -> ApiError {
    let name = str_at(obj, "/metadata/name");
    let mut err = ApiError::forbidden(format!(
        "{plural} {name:?} is forbidden: {}",
        checks::aggregate(errs)
    ));
    err.details = Some(json!({"name": name, "kind": plural}));
    err
}

/// The part of kube's `ValidateResourceRequirements` the defaults can break: a request above its
/// limit (or, for resources that cannot be overcommitted, different from it).
fn requests_within_limits(pod: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["initContainers", "containers"] {
        let all = pod
            .pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array);
        for (i, c) in all.into_iter().flatten().enumerate() {
            let parse = |field: &str| checks::list(c.pointer(&format!("/resources/{field}")));
            let (requests, limits) = (parse("requests"), parse("limits"));
            let path = format!("spec.{key}[{i}].resources.requests");
            for (name, req) in &requests {
                let Some(lim) = limits.get(name) else {
                    continue;
                };
                let native = !name.contains('/') || name.contains("kubernetes.io/");
                let overcommit = native && !name.starts_with("hugepages-");
                let detail = if !overcommit && req.nano != lim.nano {
                    format!("must be equal to {name} limit of {lim}")
                } else if req.nano > lim.nano {
                    format!("must be less than or equal to {name} limit of {lim}")
                } else {
                    continue;
                };
                errs.push(FieldError::invalid(&path, &json!(req.to_string()), &detail));
            }
        }
    }
    errs
}

/// Default and check a new pod against `ranges`.
pub(super) fn admit_pod(ranges: &[Value], obj: &mut Value) -> ApiResult<()> {
    let mut defaulted = false;
    for range in ranges {
        defaulted |= checks::default_pod(range, obj);
    }
    if defaulted {
        // kube derives the QoS class after admission: recompute it from the defaulted resources.
        let mut fresh = obj.clone();
        pod::apply_defaults(&mut fresh, true);
        if let Some(qos) = fresh.pointer("/status/qosClass").cloned()
            && obj.get("status").is_some_and(Value::is_object)
        {
            obj["status"]["qosClass"] = qos;
        }
        let errs = requests_within_limits(obj);
        if !errs.is_empty() {
            let name = str_at(obj, "/metadata/name");
            return Err(ApiError::invalid("", "Pod", name, &errs));
        }
    }
    for range in ranges {
        let errs = checks::validate_pod(range, obj);
        if !errs.is_empty() {
            return Err(forbidden("pods", obj, &errs));
        }
    }
    Ok(())
}

/// The LimitRanger on create of an object of `kind` (only pods and claims concern it).
pub async fn admit_create(api: &Api, kind: Kind, obj: &mut Value) -> ApiResult<()> {
    if !matches!(kind, Kind::Pod | Kind::PersistentVolumeClaim) {
        return Ok(());
    }
    let ns = str_at(obj, "/metadata/namespace").to_string();
    let ranges = limit_ranges(api, &ns).await?;
    if ranges.is_empty() {
        return Ok(());
    }
    if kind == Kind::Pod {
        return admit_pod(&ranges, obj);
    }
    for range in &ranges {
        let errs = checks::validate_claim(range, obj);
        if !errs.is_empty() {
            return Err(forbidden("persistentvolumeclaims", obj, &errs));
        }
    }
    Ok(())
}
