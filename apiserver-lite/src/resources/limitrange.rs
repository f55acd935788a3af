//! core/v1 LimitRanges: normalization, kube's defaults (`SetDefaults_LimitRangeItem`), validation
//! (`ValidateLimitRange`, in `validation`), table columns (`printLimitRange`) and the LimitRanger
//! admission plugin (`admission`) that defaults and checks the resources of new pods and claims.

pub mod admission;
mod checks;
mod validation;

use serde_json::{Map, Value, json};

use super::storage::quantity;

pub use validation::validate;

/// The limit types kube knows (`IsStandardLimitRangeType`).
pub const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// The resource lists of a `LimitRangeItem`.
const LISTS: &[&str] = &[
    "max",
    "min",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
];

/// The items of `spec.limits` (empty when absent or malformed).
fn items(obj: &Value) -> &[Value] {
    obj.pointer("/spec/limits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Round-trip through the k8s-openapi type (unknown fields dropped). Numbers in the resource lists
/// (`cpu: 1` in YAML) are quantities, as kube's decoder reads them.
pub fn normalize(v: &Value) -> Result<Value, String> {
    let mut v = v.clone();
    if let Some(limits) = v.pointer_mut("/spec/limits").and_then(Value::as_array_mut) {
        for item in limits {
            for list in LISTS {
                if let Some(m) = item.get_mut(*list).and_then(Value::as_object_mut) {
                    for q in m.values_mut() {
                        if let Value::Number(n) = q {
                            *q = Value::String(n.to_string());
                        }
                    }
                }
            }
        }
    }
    let t: k8s_openapi::api::core::v1::LimitRange =
        serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// kube's defaulting of every written version (`SetDefaults_LimitRangeItem`), then the quantities in
/// their canonical form, as kube stores them. For `Container` items: a missing `default` takes `max`,
/// a missing `defaultRequest` takes `default`, then `min`.
pub fn defaults(obj: &mut Value) {
    let Some(limits) = obj
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for item in limits.iter_mut().filter(|i| i.is_object()) {
        if item.get("type").and_then(Value::as_str) == Some("Container") {
            let list = |item: &Value, name: &str| {
                item.get(name)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let (max, min) = (list(item, "max"), list(item, "min"));
            let mut default = list(item, "default");
            fill(&mut default, &max);
            let mut request = list(item, "defaultRequest");
            fill(&mut request, &default);
            fill(&mut request, &min);
            // Empty lists are left out, as kube's serialization omits them.
            for (name, list) in [("default", default), ("defaultRequest", request)] {
                if let Some(m) = item.as_object_mut() {
                    if list.is_empty() {
                        m.remove(name);
                    } else {
                        m.insert(name.into(), Value::Object(list));
                    }
                }
            }
        }
        for list in LISTS {
            if let Some(m) = item.get_mut(*list).and_then(Value::as_object_mut) {
                for q in m.values_mut() {
                    if let Some(c) = q.as_str().and_then(quantity::canonical) {
                        *q = Value::String(c);
                    }
                }
            }
        }
    }
}

/// Copy into `into` the entries of `from` it lacks.
fn fill(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        into.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// kube's `limitRangeColumnDefinitions`: the name and the creation time (a date, not an age).
pub fn columns(name: Value) -> Vec<Value> {
    vec![
        name,
        json!({"name": "Created At", "type": "date", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            "priority": 0}),
    ]
}

/// Row cells (`printLimitRange`): the name and `metadata.creationTimestamp` as RFC 3339.
pub fn cells(obj: &Value, name: String) -> Vec<Value> {
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or(Value::Null);
    vec![json!(name), created]
}

#[cfg(test)]
mod tests;
