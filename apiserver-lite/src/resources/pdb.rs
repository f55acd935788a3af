//! policy/v1 PodDisruptionBudgets: normalization, create/update preparation (kube's
//! `podDisruptionBudgetStrategy`), validation (kube's `ValidatePodDisruptionBudget` and the status
//! checks of `ValidatePodDisruptionBudgetStatusUpdate`) and table columns (`printPodDisruptionBudget`).
//! The status is computed by `crate::controllers::disruption` and consumed by `crate::eviction`.

use serde_json::{Value, json};

use super::workloads;
use crate::status::FieldError;

/// The values `spec.unhealthyPodEvictionPolicy` accepts (kube 1.32, the policy is GA).
pub const EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::policy::v1::PodDisruptionBudget =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// The status kube's strategy starts a budget with: every counter 0 (they are never omitted).
pub fn empty_status() -> Value {
    json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
}

/// kube's `PrepareForCreate`: whatever status the client sent is replaced by the empty one.
pub fn prepare_create(obj: &mut Value) {
    obj["status"] = empty_status();
}

// kube's `PrepareForUpdate` keeps the stored status and bumps the generation on a spec change: the
// generic update path does both for kinds with a `status` subresource.

/// `minAvailable` / `maxUnavailable`: an integer ≥ 0 or a percentage of at most 100%
/// (`ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`).
fn validate_int_or_percent(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::String(s) => {
            if !workloads::valid_percent(s) {
                errs.push(FieldError::invalid(path, v, workloads::PERCENT_MSG));
            } else if workloads::int_or_percent(v).is_some_and(|n| n > 100) {
                errs.push(FieldError::invalid(
                    path,
                    v,
                    "must not be greater than 100%",
                ));
            }
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            if n.as_i64().is_some_and(|n| n < 0) {
                errs.push(FieldError::invalid(
                    path,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        _ => errs.push(FieldError::invalid(
            path,
            v,
            "must be an integer or percentage (e.g '5%')",
        )),
    }
}

fn present<'a>(spec: &'a Value, field: &str) -> Option<&'a Value> {
    spec.get(field).filter(|v| !v.is_null())
}

/// kube's `ValidatePodDisruptionBudgetSpec` plus the non-negative status counters: every version
/// written, created or updated, by the main resource or `status`, must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let min = present(&spec, "minAvailable");
    let max = present(&spec, "maxUnavailable");
    if min.is_some() && max.is_some() {
        errs.push(workloads::invalid_go(
            "spec",
            go_spec(&spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(v) = min {
        validate_int_or_percent(v, "spec.minAvailable", &mut errs);
    }
    if let Some(v) = max {
        validate_int_or_percent(v, "spec.maxUnavailable", &mut errs);
    }
    if let Some(sel) = present(&spec, "selector") {
        errs.extend(workloads::validate_label_selector(sel, "spec.selector"));
    }
    if let Some(policy) = present(&spec, "unhealthyPodEvictionPolicy") {
        let p = policy.as_str().unwrap_or("");
        if !EVICTION_POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                policy,
                EVICTION_POLICIES,
            ));
        }
    }
    for field in [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ] {
        workloads::nonnegative(
            obj,
            &format!("/status/{field}"),
            &format!("status.{field}"),
            &mut errs,
        );
    }
    errs
}

/// The Go `%v`-ish rendering kube prints for an invalid spec (only its numbers matter to a reader).
fn go_spec(spec: &Value) -> String {
    let show = |f: &str| match spec.get(f) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "nil".to_string(),
    };
    format!(
        "{{minAvailable: {}, maxUnavailable: {}}}",
        show("minAvailable"),
        show("maxUnavailable")
    )
}

fn col(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": 0})
}

/// Table columns (kube's `podDisruptionBudgetColumnDefinitions`).
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        age,
    ]
}

/// Row cells (kube's `printPodDisruptionBudget`): `N/A` for the bound that is not set.
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let bound = |field: &str| match obj.pointer(&format!("/spec/{field}")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    };
    let allowed = obj
        .pointer("/status/disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    vec![
        json!(name),
        json!(bound("minAvailable")),
        json!(bound("maxUnavailable")),
        json!(allowed),
        json!(age),
    ]
}

#[cfg(test)]
mod tests;
