//! core/v1 ResourceQuotas: normalization, create preparation (kube's `resourcequotaStrategy`: the status is
//! the controller's), validation (kube's `ValidateResourceQuota`) and table columns (`printResourceQuota`).
//! What objects cost is in [`usage`], the admission that charges them in [`admission`]; the controller that
//! keeps `status.used` true is `crate::controllers::quota`.

pub mod admission;
pub mod scopes;
pub mod usage;

use serde_json::{Value, json};

use super::storage::quantity;
use super::validation::{QUALIFIED_NAME_MSG, is_qualified_name};
use crate::status::FieldError;

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::core::v1::ResourceQuota =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// kube's `PrepareForCreate`: a new quota has no status until the controller computes it.
pub fn prepare_create(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

/// Resource names kube accepts without a `/` (`standardResources`, `IsStandardResourceName`), and those of them
/// quota tracks; LimitRange validation uses them too.
pub(crate) const STANDARD: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];
/// Counted in whole objects (`integerResources`).
const INTEGER: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];
/// The scopes kube knows (`standardResourceQuotaScopes`).
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];
const POD_COMPUTE: &[&str] = &[
    "cpu",
    "memory",
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

fn hugepages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

fn standard_quota_resource(name: &str) -> bool {
    (STANDARD.contains(&name) && name != "storage") || hugepages(name)
}

/// kube's `IsExtendedResourceName`: a qualified name outside `kubernetes.io` that is not a request.
fn extended(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    !native && !name.starts_with("requests.") && is_qualified_name(&format!("requests.{name}"))
}

/// kube's `IsResourceQuotaScopeValidForResource`.
fn scope_valid_for(scope: &str, resource: &str) -> bool {
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => resource == "pods" || POD_COMPUTE.contains(&resource),
        "BestEffort" => resource == "pods",
        _ => true,
    }
}

/// A `hard`/`used` map: resource names (`ValidateResourceQuotaResourceName`) and quantities
/// (`ValidateResourceQuantityValue`).
fn validate_list(list: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(map) = list.and_then(Value::as_object) else {
        return;
    };
    for (name, value) in map {
        let p = format!("{path}[{name}]");
        if !is_qualified_name(name) {
            errs.push(FieldError::invalid(&p, &json!(name), QUALIFIED_NAME_MSG));
        } else if !name.contains('/') {
            if !STANDARD.contains(&name.as_str()) && !hugepages(name) {
                errs.push(FieldError::invalid(
                    &p,
                    &json!(name),
                    "must be a standard resource type or fully qualified",
                ));
            }
            if !standard_quota_resource(name) {
                errs.push(FieldError::invalid(
                    &p,
                    &json!(name),
                    "must be a standard resource for quota",
                ));
            }
        }
        let Some(amount) = value.as_str().and_then(usage::Amount::parse) else {
            errs.push(FieldError::invalid(&p, value, quantity::QUANTITY_MSG));
            continue;
        };
        if amount.nano < 0 {
            errs.push(FieldError::invalid(
                &p,
                &json!(amount.text()),
                "must be greater than or equal to 0",
            ));
        }
        if (INTEGER.contains(&name.as_str()) || extended(name)) && amount.nano % 1_000_000_000 != 0
        {
            errs.push(FieldError::invalid(
                &p,
                &json!(amount.text()),
                "must be an integer",
            ));
        }
    }
}

fn hard_names(spec: &Value) -> Vec<String> {
    let mut names: Vec<String> = spec
        .get("hard")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Both members of a conflicting pair (`BestEffort`/`NotBestEffort`, `Terminating`/`NotTerminating`).
fn conflicting(scopes: &[&str]) -> usize {
    [
        ("BestEffort", "NotBestEffort"),
        ("Terminating", "NotTerminating"),
    ]
    .iter()
    .filter(|(a, b)| scopes.contains(a) && scopes.contains(b))
    .count()
}

/// `spec.scopes` (kube's `validateResourceQuotaScopes`).
fn validate_scopes(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(list) = spec.get("scopes").and_then(Value::as_array) else {
        return;
    };
    if list.is_empty() {
        return;
    }
    let scopes: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    let value = Value::Array(list.clone());
    let hard = hard_names(spec);
    for scope in &scopes {
        if !SCOPES.contains(scope) {
            errs.push(FieldError::invalid(
                "spec.scopes",
                &value,
                "unsupported scope",
            ));
        }
        for k in &hard {
            if standard_quota_resource(k) && !scope_valid_for(scope, k) {
                errs.push(FieldError::invalid(
                    "spec.scopes",
                    &value,
                    "unsupported scope applied to resource",
                ));
            }
        }
    }
    for _ in 0..conflicting(&scopes) {
        errs.push(FieldError::invalid(
            "spec.scopes",
            &value,
            "conflicting scopes",
        ));
    }
}

/// `spec.scopeSelector` (kube's `validateScopedResourceSelectorRequirement`).
fn validate_scope_selector(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(selector) = spec.get("scopeSelector").filter(|s| !s.is_null()) else {
        return;
    };
    let path = "spec.scopeSelector.matchExpressions";
    let hard = hard_names(spec);
    let mut scopes = Vec::new();
    for req in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let scope = req.get("scopeName").and_then(Value::as_str).unwrap_or("");
        let op = req.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = req.get("values").cloned().unwrap_or(json!([]));
        let n_values = values.as_array().map_or(0, Vec::len);
        if !SCOPES.contains(&scope) {
            errs.push(FieldError::invalid(
                format!("{path}.scopeName"),
                &json!(scope),
                "unsupported scope",
            ));
        }
        for k in &hard {
            if standard_quota_resource(k) && !scope_valid_for(scope, k) {
                errs.push(FieldError::invalid(
                    path,
                    selector,
                    "unsupported scope applied to resource",
                ));
            }
        }
        if [
            "BestEffort",
            "NotBestEffort",
            "Terminating",
            "NotTerminating",
        ]
        .contains(&scope)
            && op != "Exists"
        {
            errs.push(FieldError::invalid(
                format!("{path}.operator"),
                &json!(op),
                "must be 'Exist' only operator when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort and ResourceQuotaScopeNotBestEffort",
            ));
        }
        match op {
            "In" | "NotIn" if n_values == 0 => errs.push(FieldError::required(
                format!("{path}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if n_values != 0 => errs.push(FieldError::invalid(
                format!("{path}.values"),
                &values,
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errs.push(FieldError::invalid(
                format!("{path}.operator"),
                &json!(op),
                "not a valid selector operator",
            )),
        }
        scopes.push(scope);
    }
    for _ in 0..conflicting(&scopes) {
        errs.push(FieldError::invalid(
            path,
            &json!(null),
            "conflicting scopes",
        ));
    }
}

/// kube's `ValidateResourceQuotaSpec` and `ValidateResourceQuotaStatus`, for every version written.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    validate_list(spec.get("hard"), "spec.hard", &mut errs);
    validate_scopes(&spec, &mut errs);
    validate_scope_selector(&spec, &mut errs);
    validate_list(obj.pointer("/status/hard"), "status.hard", &mut errs);
    validate_list(obj.pointer("/status/used"), "status.used", &mut errs);
    errs
}

fn col(name: &str, desc: &str) -> Value {
    json!({"name": name, "type": "string", "format": "", "description": desc, "priority": 0})
}

/// Table columns (kube's `resourceQuotaColumnDefinitions`).
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        age,
        col(
            "Request",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col(
            "Limit",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
    ]
}

/// Row cells (kube's `printResourceQuota`): `resource: used/hard` for every `spec.hard` resource,
/// the `limits.*` ones under LIMIT, the others under REQUEST.
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let used = usage::from_json(obj.pointer("/status/used"));
    let hard = usage::from_json(obj.pointer("/status/hard"));
    let text = |u: &usage::Usage, k: &str| u.get(k).map_or("0".to_string(), |a| a.text());
    let mut request = Vec::new();
    let mut limit = Vec::new();
    for k in hard_names(obj.get("spec").unwrap_or(&Value::Null)) {
        let cell = format!("{k}: {}/{}", text(&used, &k), text(&hard, &k));
        if k.split('.').next() == Some("limits") && k.contains('.') {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    vec![
        json!(name),
        json!(age),
        json!(request.join(", ")),
        json!(limit.join(", ")),
    ]
}

#[cfg(test)]
mod tests;
