//! kube's `ValidateLimitRange`: known (or qualified) limit types, each at most once; resource names a
//! type may limit; `min ≤ defaultRequest ≤ default ≤ max`; `maxLimitRequestRatio ≥ 1` and within
//! `max / min`; no defaults on `Pod` items; a storage bound on `PersistentVolumeClaim` items. Field paths
//! and messages are kube's (the offending quantity is shown as its text).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{LIMIT_TYPES, items};
use crate::resources::storage::quantity::{self, Quantity};
use crate::resources::validation::{QUALIFIED_NAME_MSG, is_qualified_name};
use crate::status::FieldError;

/// Resource names a container (and so a `Container` or `Pod` item) may name unqualified.
const CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Whether `name` is one of kube's native resources (unqualified or under `kubernetes.io/`).
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// kube's `validateResourceName`.
fn resource_name(name: &str, path: &str) -> Vec<FieldError> {
    if !is_qualified_name(name) {
        return vec![FieldError::invalid(path, &json!(name), QUALIFIED_NAME_MSG)];
    }
    let standard = crate::resources::quota::STANDARD.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        return vec![FieldError::invalid(
            path,
            &json!(name),
            "must be a standard resource type or fully qualified",
        )];
    }
    Vec::new()
}

/// kube's `validateContainerResourceName`.
fn container_resource_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs = resource_name(name, path);
    if !name.contains('/') {
        if !CONTAINER_RESOURCES.contains(&name) && !name.starts_with("hugepages-") {
            errs.push(FieldError::invalid(
                path,
                &json!(name),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_qualified_name(&format!("requests.{name}")) {
        errs.push(FieldError::invalid(
            path,
            &json!(name),
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// kube's `validateLimitRangeTypeName`.
fn type_name(value: &str, path: &str) -> Vec<FieldError> {
    if !is_qualified_name(value) {
        return vec![FieldError::invalid(path, &json!(value), QUALIFIED_NAME_MSG)];
    }
    if !value.contains('/') && !LIMIT_TYPES.contains(&value) {
        return vec![FieldError::invalid(
            path,
            &json!(value),
            "must be a standard limit type or fully qualified",
        )];
    }
    Vec::new()
}

/// The quantities of one resource list of an item, by resource name; a malformed quantity is
/// reported and left out.
type Lists = BTreeMap<&'static str, BTreeMap<String, Quantity>>;

/// Validate the names and quantities of `list` of `item` (at `path`), recording them in `lists`.
fn read_list(
    item: &Value,
    list: &'static str,
    limit_type: &str,
    path: &str,
    lists: &mut Lists,
    errs: &mut Vec<FieldError>,
) {
    let entries = lists.entry(list).or_default();
    let Some(m) = item.get(list).and_then(Value::as_object) else {
        return;
    };
    for (name, q) in m {
        let key_path = format!("{path}.{list}[{name}]");
        if matches!(limit_type, "Pod" | "Container") {
            errs.extend(container_resource_name(name, &key_path));
        } else {
            errs.extend(resource_name(name, &key_path));
        }
        match q.as_str().and_then(Quantity::parse) {
            Some(parsed) => {
                entries.insert(name.clone(), parsed);
            }
            None => errs.push(FieldError::invalid(&key_path, q, quantity::QUANTITY_MSG)),
        }
    }
}

/// Whether kube lets requests of `name` be below its limits (`IsOvercommitAllowed`).
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

fn invalid(path: String, q: &Quantity, detail: String) -> FieldError {
    FieldError::invalid(path, &json!(q.to_string()), &detail)
}

/// kube's `resource.MaxMilliValue`: above it, values are compared in whole units.
pub(super) const MAX_MILLI: i128 = (i64::MAX / 1000) as i128;

/// The relations between the lists of one item, for resource `k` (kube's loop over the item's keys).
fn relations(k: &str, path: &str, lists: &Lists, errs: &mut Vec<FieldError>) {
    let get = |list: &str| lists.get(list).and_then(|m| m.get(k));
    let (min, max) = (get("min"), get("max"));
    let (default, request) = (get("default"), get("defaultRequest"));
    let ratio = get("maxLimitRequestRatio");
    let at = |list: &str| format!("{path}.{list}[{k}]");
    if let (Some(min), Some(max)) = (min, max)
        && min.nano > max.nano
    {
        errs.push(invalid(
            at("min"),
            min,
            format!("min value {min} is greater than max value {max}"),
        ));
    }
    if let Some(request) = request {
        if let Some(min) = min
            && min.nano > request.nano
        {
            errs.push(invalid(
                at("defaultRequest"),
                request,
                format!("min value {min} is greater than default request value {request}"),
            ));
        }
        if let Some(max) = max
            && request.nano > max.nano
        {
            errs.push(invalid(
                at("defaultRequest"),
                request,
                format!("default request value {request} is greater than max value {max}"),
            ));
        }
        if let Some(default) = default
            && request.nano > default.nano
        {
            errs.push(invalid(
                at("defaultRequest"),
                request,
                format!(
                    "default request value {request} is greater than default limit value {default}"
                ),
            ));
        }
    }
    if let Some(default) = default {
        if let Some(min) = min
            && min.nano > default.nano
        {
            errs.push(invalid(
                at("default"),
                min,
                format!("min value {min} is greater than default value {default}"),
            ));
        }
        if let Some(max) = max
            && default.nano > max.nano
        {
            errs.push(invalid(
                at("default"),
                max,
                format!("default value {default} is greater than max value {max}"),
            ));
        }
    }
    if let Some(ratio) = ratio {
        if ratio.nano < 1_000_000_000 {
            errs.push(invalid(
                at("maxLimitRequestRatio"),
                ratio,
                format!("ratio {ratio} is less than 1"),
            ));
        }
        if let (Some(min), Some(max)) = (min, max) {
            let fine = [ratio, min, max].iter().all(|q| q.value() < MAX_MILLI);
            let (ratio_value, lo, hi) = if fine {
                let m = |q: &Quantity| q.milli_value() as f64;
                (m(ratio) / 1000.0, m(min), m(max))
            } else {
                let u = |q: &Quantity| q.value() as f64;
                (u(ratio), u(min), u(max))
            };
            let limit = hi / lo;
            if ratio_value > limit {
                errs.push(invalid(
                    at("maxLimitRequestRatio"),
                    ratio,
                    format!("ratio {ratio} is greater than max/min = {limit:.6}"),
                ));
            }
        }
    }
    if !overcommit_allowed(k)
        && let (Some(default), Some(request)) = (default, request)
        && default.nano != request.nano
    {
        errs.push(invalid(
            at("defaultRequest"),
            request,
            format!("default value {default} must equal to defaultRequest value {request} in {k}"),
        ));
    }
}

/// kube's `ValidateLimitRange` without the metadata (checked by the caller).
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, item) in items(obj).iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        let limit_type = item.get("type").and_then(Value::as_str).unwrap_or("");
        errs.extend(type_name(limit_type, &format!("{path}.type")));
        if !seen.insert(limit_type) {
            errs.push(FieldError::duplicate(
                format!("{path}.type"),
                &json!(limit_type),
            ));
        }
        let mut lists = Lists::new();
        read_list(item, "max", limit_type, &path, &mut lists, &mut errs);
        read_list(item, "min", limit_type, &path, &mut lists, &mut errs);
        if limit_type == "Pod" {
            for list in ["default", "defaultRequest"] {
                if item
                    .get(list)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                {
                    errs.push(FieldError::forbidden(
                        format!("{path}.{list}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        } else {
            read_list(item, "default", limit_type, &path, &mut lists, &mut errs);
            read_list(
                item,
                "defaultRequest",
                limit_type,
                &path,
                &mut lists,
                &mut errs,
            );
        }
        if limit_type == "PersistentVolumeClaim" {
            let has = |list: &str| {
                item.get(list)
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.contains_key("storage"))
            };
            if !has("min") && !has("max") {
                errs.push(FieldError::required(
                    format!("{path}.limits"),
                    "either minimum or maximum storage value is required, but neither was provided",
                ));
            }
        }
        read_list(
            item,
            "maxLimitRequestRatio",
            limit_type,
            &path,
            &mut lists,
            &mut errs,
        );
        let keys: BTreeSet<String> = lists.values().flat_map(|m| m.keys().cloned()).collect();
        for k in &keys {
            relations(k, &path, &lists, &mut errs);
        }
    }
    errs
}
